//! A user-defined transport: the handshake over a Unix socket through a
//! `Connector` written outside this crate (the rustdoc example, for real).
#![cfg(unix)]

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use mq_conn::{BoxIo, Connector, Dialer};
use mq_protocol::{Codec, Frame, Hello, Role, Welcome, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Decoder;

struct UnixConnector;

impl Connector for UnixConnector {
    fn connect(&self, address: &str) -> BoxFuture<'static, std::io::Result<BoxIo>> {
        let path = address.to_owned();
        Box::pin(async move {
            let s = UnixStream::connect(path).await?;
            Ok(Box::new(s) as BoxIo)
        })
    }
}

#[tokio::test]
async fn handshake_over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("mq-conn-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broker.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let mut codec = Codec::new(1 << 20);
        let hello = loop {
            if let Some(f) = codec.decode(&mut buf).unwrap() {
                break f;
            }
            assert!(s.read_buf(&mut buf).await.unwrap() > 0, "eof before Hello");
        };
        let mut out = BytesMut::new();
        Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            max_frame_size: 1 << 20,
            heartbeat_ms: 0,
            server_name: "unix".into(),
            max_message_size: None,
        })
        .encode(&mut out)
        .unwrap();
        s.write_all(&out).await.unwrap();
        hello
    });
    let dialer = Dialer::new(
        Arc::new(UnixConnector),
        Hello::new(Role::Receiver, "over-unix"),
    )
    .connect_timeout(Duration::from_secs(10));
    let address = path.to_string_lossy().into_owned();
    let est = dialer.connect(&address).await.unwrap();
    assert_eq!(est.welcome.server_name, "unix");
    assert_eq!(est.address, address);
    match server.await.unwrap() {
        Frame::Hello(h) => assert_eq!(
            (h.role, h.client_name.as_str()),
            (Role::Receiver, "over-unix")
        ),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
