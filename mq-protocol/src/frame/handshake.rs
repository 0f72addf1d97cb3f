//! The handshake: `Hello` (client), then `Welcome` or `Refuse` (server).

use bytes::BytesMut;

use crate::wire::PutBe;

use super::{frame_type, Body};
use crate::wire::{check_len, put_str, str_len, Reader};
use crate::{ErrorCode, ProtocolError, MAX_NAME_LEN, MAX_TOKEN_LEN};

/// What a client connection is for. A connection has exactly one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Publishes `Message` frames and receives `Reply` frames.
    Sender,
    /// Subscribes and receives `Deliver` frames, answering `Ack`/`Nack`.
    Receiver,
}

impl Role {
    fn to_u8(self) -> u8 {
        match self {
            Role::Sender => 1,
            Role::Receiver => 2,
        }
    }
}

/// First frame of every connection, client to server.
///
/// # Examples
///
/// ```
/// use mq_protocol::{Hello, Role, PROTOCOL_VERSION};
/// let hello = Hello::new(Role::Sender, "billing");
/// assert_eq!((hello.min_version, hello.max_version), (PROTOCOL_VERSION, PROTOCOL_VERSION));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    /// Lowest protocol version the client speaks.
    pub min_version: u16,
    /// Highest protocol version the client speaks.
    pub max_version: u16,
    /// The connection's role.
    pub role: Role,
    /// A name for logs (at most [`MAX_NAME_LEN`] bytes).
    pub client_name: String,
    /// Shared-secret token, if the broker requires one.
    pub token: Option<String>,
}

/// Prints every field but the auth token, which shows as `"<redacted>"`.
impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .field("role", &self.role)
            .field("client_name", &self.client_name)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Hello {
    /// A hello for this crate's protocol version without a token.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = mq_protocol::Hello::new(mq_protocol::Role::Receiver, "c");
    /// assert!(h.token.is_none());
    /// ```
    pub fn new(role: Role, client_name: impl Into<String>) -> Self {
        Self {
            min_version: crate::PROTOCOL_VERSION,
            max_version: crate::PROTOCOL_VERSION,
            role,
            client_name: client_name.into(),
            token: None,
        }
    }
}

impl Body for Hello {
    const TYPE: u8 = frame_type::HELLO;
    const NAME: &'static str = "Hello";

    fn body_len(&self) -> usize {
        2 + 2 + 1 + str_len(&self.client_name) + 1 + self.token.as_deref().map_or(0, str_len)
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("client name", self.client_name.len(), MAX_NAME_LEN)?;
        if let Some(t) = &self.token {
            check_len("token", t.len(), MAX_TOKEN_LEN)?;
        }
        Ok(())
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u16(self.min_version);
        dst.put_u16(self.max_version);
        dst.put_u8(self.role.to_u8());
        put_str(dst, &self.client_name);
        match &self.token {
            None => dst.put_u8(0),
            Some(t) => {
                dst.put_u8(1);
                put_str(dst, t);
            }
        }
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        let min_version = r.u16("min version")?;
        let max_version = r.u16("max version")?;
        let role = match r.u8("role")? {
            1 => Role::Sender,
            2 => Role::Receiver,
            v => return Err(invalid("role", v)),
        };
        let client_name = r.bounded_string("client name", MAX_NAME_LEN)?;
        let token = match r.u8("token flag")? {
            0 => None,
            1 => Some(r.bounded_string("token", MAX_TOKEN_LEN)?),
            v => return Err(invalid("token flag", v)),
        };
        Ok(Self {
            min_version,
            max_version,
            role,
            client_name,
            token,
        })
    }
}

fn invalid(field: &'static str, v: u8) -> ProtocolError {
    ProtocolError::InvalidValue {
        frame: "Hello",
        field,
        value: u64::from(v),
    }
}

/// The server accepts the hello. Carries the agreed version and the server's limits.
///
/// # Examples
///
/// ```
/// let w = mq_protocol::Welcome { version: 1, max_frame_size: 1 << 20, heartbeat_ms: 5000,
///                                server_name: "mock".into(), max_message_size: Some(1 << 20) };
/// assert_eq!(w.version, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The version both sides now speak.
    pub version: u16,
    /// The largest frame (type byte plus body) the server accepts.
    pub max_frame_size: u32,
    /// The heartbeat interval: each side sends something (a `Ping` if idle)
    /// at least this often and closes after three intervals of silence.
    pub heartbeat_ms: u32,
    /// A name for logs.
    pub server_name: String,
    /// The largest message (payload plus header key and value bytes) the
    /// broker stores; a larger one is answered `Rejected(MESSAGE_TOO_LARGE)`.
    /// A trailing field (PROTOCOL.md §3.2, §9): `None` when the broker did
    /// not send it, and then not encoded.
    pub max_message_size: Option<u32>,
}

impl Body for Welcome {
    const TYPE: u8 = frame_type::WELCOME;
    const NAME: &'static str = "Welcome";

    fn body_len(&self) -> usize {
        2 + 4 + 4 + str_len(&self.server_name) + self.max_message_size.map_or(0, |_| 4)
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("server name", self.server_name.len(), MAX_NAME_LEN)
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u16(self.version);
        dst.put_u32(self.max_frame_size);
        dst.put_u32(self.heartbeat_ms);
        put_str(dst, &self.server_name);
        if let Some(m) = self.max_message_size {
            dst.put_u32(m);
        }
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            version: r.u16("version")?,
            max_frame_size: r.u32("max frame size")?,
            heartbeat_ms: r.u32("heartbeat")?,
            server_name: r.bounded_string("server name", MAX_NAME_LEN)?,
            max_message_size: if r.remaining() >= 4 {
                Some(r.u32("max message size")?)
            } else {
                None
            },
        })
    }
}

/// The server refuses the hello; it closes the connection after sending this.
///
/// # Examples
///
/// ```
/// let r = mq_protocol::Refuse { code: mq_protocol::ErrorCode::UNAUTHORIZED, reason: "bad token".into() };
/// assert_eq!(r.code.0, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    /// Why, as a code (see [`ErrorCode`]).
    pub code: ErrorCode,
    /// Why, for a person.
    pub reason: String,
}

super::control::code_reason_frame!(Refuse, frame_type::REFUSE);
