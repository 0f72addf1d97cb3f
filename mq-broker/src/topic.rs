//! The broker's shared topic name: one allocation per interned topic,
//! held by every stored message and group of that topic.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use mq_protocol::ByteString;

/// An interned topic name, 8 bytes (a stored message carries one): a thin
/// pointer to the name as a [`ByteString`], so a `Deliver` takes the name
/// with a reference count ([`Topic::shared`]) instead of a copy. Hashes,
/// compares and borrows as its `str`, so maps keyed by it are looked up
/// with a `&str`.
#[derive(Clone)]
pub(crate) struct Topic(Arc<ByteString>);

impl Topic {
    /// The name as a frame carries it (a reference count, no copy).
    pub(crate) fn shared(&self) -> ByteString {
        ByteString::clone(&self.0)
    }
}

impl From<&str> for Topic {
    /// Copies `name`: an interned name never pins a read buffer.
    fn from(name: &str) -> Self {
        Topic(Arc::new(ByteString::from(name)))
    }
}

impl Deref for Topic {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Topic {}

impl Hash for Topic {
    /// As the `str`, so that `Borrow<str>` lookups agree.
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Topic;
    use mq_protocol::hash::FastMap;

    #[test]
    fn is_one_pointer_and_looks_up_by_str() {
        assert_eq!(std::mem::size_of::<Topic>(), 8);
        let t = Topic::from("orders");
        let mut m: FastMap<Topic, u32> = FastMap::default();
        m.insert(t.clone(), 7);
        assert_eq!(m.get("orders"), Some(&7));
        assert_eq!(m.get("refunds"), None);
        assert_eq!(&*t.shared(), "orders");
        assert_eq!(t, Topic::from("orders"));
        assert_ne!(t, Topic::from("order"));
        assert_eq!(format!("{t} {t:?}"), "orders \"orders\"");
    }

    #[test]
    fn shares_the_name_instead_of_copying_it() {
        let t = Topic::from("orders");
        let (a, b) = (t.shared(), t.clone().shared());
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(a.as_ptr(), t.as_ptr());
    }
}
