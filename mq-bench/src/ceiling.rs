//! The machine's ceiling: a plain tokio TCP echo of frames of the same size
//! with the same window, no SDK and no broker logic. Every SDK figure is also
//! reported as a fraction of this, measured in the same run, because absolute
//! numbers drift on shared machines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use hdrhistogram::Histogram;
use mq_protocol::{Codec, Frame, Headers, Message, MessageId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{Encoder, FramedRead};

use crate::report::Row;
use crate::{now_us, pace_delay, Load, Progress};

/// An echo server: every byte read is written back, in chunks as large as
/// the reads.
async fn echo_server() -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if sock.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Sends `count` Message frames of `payload` bytes with at most `window`
/// unanswered (at `rate` per second if given), and measures round-trip
/// latency from a timestamp carried in the payload.
pub async fn run(load: Load, pb: &Progress) -> std::io::Result<Row> {
    let Load {
        payload,
        window,
        count,
        rate,
        ..
    } = load;
    let addr = echo_server().await?;
    let sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let (rd, mut wr) = sock.into_split();
    let permits = Arc::new(Semaphore::new(window));

    let reader = {
        let permits = permits.clone();
        let pb = pb.clone();
        tokio::spawn(async move {
            let mut frames = FramedRead::new(rd, Codec::default());
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut got = 0u64;
            while got < count {
                match frames.next().await {
                    Some(Ok(Frame::Message(m))) => {
                        let sent = u64::from_be_bytes(m.payload[..8].try_into().unwrap_or([0; 8]));
                        let _ = hist.record(now_us().saturating_sub(sent).max(1));
                        got += 1;
                        permits.add_permits(1);
                        pb.tick(got);
                    }
                    _ => break,
                }
            }
            (got, hist)
        })
    };

    let start = Instant::now();
    let mut codec = Codec::default();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let filler = Bytes::from(vec![0x5a; payload.max(8) - 8]);
    for seq in 0..count {
        if let Some(d) = rate.and_then(|r| pace_delay(start, seq, r)) {
            if !buf.is_empty() {
                wr.write_all(&buf).await?;
                buf.clear();
            }
            tokio::time::sleep(d).await;
        }
        // Coalesce writes: only wait (and flush) when the window is full.
        let permit = match permits.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if !buf.is_empty() {
                    wr.write_all(&buf).await?;
                    buf.clear();
                }
                permits.acquire().await.map_err(std::io::Error::other)?
            }
        };
        permit.forget();
        let mut p = BytesMut::with_capacity(payload.max(8));
        p.put_u64(now_us());
        p.extend_from_slice(&filler);
        let frame = Frame::Message(Message {
            id: MessageId::new(1, seq),
            attempt: 1,
            topic: "bench".into(),
            headers: Headers::new(),
            payload: p.freeze(),
        });
        codec
            .encode(&frame, &mut buf)
            .map_err(std::io::Error::other)?;
        if buf.len() >= 64 * 1024 {
            wr.write_all(&buf).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        wr.write_all(&buf).await?;
    }
    let (got, hist) = reader.await.map_err(std::io::Error::other)?;
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    let name = if rate.is_some() {
        "ceiling-echo-paced"
    } else {
        "ceiling-echo"
    };
    Ok(Row::new(name, payload, window, got, elapsed).with_latency(&hist))
}
