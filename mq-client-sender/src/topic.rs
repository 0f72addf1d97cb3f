//! [`Topic`]: a message's topic name, handed over without a copy.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A topic name as an [`OutgoingMessage`](crate::OutgoingMessage) keeps it.
///
/// Built from a `&'static str` (a literal or a `const`) it is kept as the
/// reference, from an `Arc<str>` it shares the one allocation, from a
/// `String` it keeps that `String`: none of them copies the name, so
/// sending to a literal topic allocates nothing for the topic, and
/// [`Topic::shared`] makes a name known only at run time cheap to reuse
/// (clone the `Topic`: a reference count, no copy).
///
/// It dereferences to `str` and compares, hashes and prints as the name.
///
/// # Examples
///
/// ```
/// use mq_client_sender::{OutgoingMessage, Topic};
///
/// // A literal: nothing is allocated for the topic.
/// let a = OutgoingMessage::new("orders", "1");
///
/// // A name read at run time, shared by every message.
/// let name = String::from("orders");
/// let topic = Topic::shared(&name);
/// let b = OutgoingMessage::new(topic.clone(), "2");
/// assert_eq!(a.topic(), b.topic());
/// assert_eq!(topic, "orders");
/// ```
#[derive(Clone)]
pub struct Topic(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl Topic {
    /// A topic for `name` that later clones share (one allocation now, a
    /// reference count per clone). For a name known at run time and used
    /// for many messages.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = mq_client_sender::Topic::shared(&format!("tenant-{}", 7));
    /// assert_eq!(t.as_str(), "tenant-7");
    /// ```
    pub fn shared(name: &str) -> Self {
        Self(Repr::Shared(Arc::from(name)))
    }

    /// The name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_client_sender::Topic::from("t").as_str(), "t");
    /// ```
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
            Repr::Owned(s) => s,
        }
    }

    /// The name as an owned `String` (moved out if it is one).
    ///
    /// # Examples
    ///
    /// ```
    /// let t = mq_client_sender::Topic::from(String::from("t"));
    /// assert_eq!(t.into_string(), "t");
    /// ```
    pub fn into_string(self) -> String {
        match self.0 {
            Repr::Owned(s) => s,
            Repr::Static(s) => s.to_owned(),
            Repr::Shared(s) => s.as_ref().to_owned(),
        }
    }
}

impl Deref for Topic {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Topic {}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl From<&'static str> for Topic {
    /// Kept as the reference: no allocation.
    fn from(s: &'static str) -> Self {
        Self(Repr::Static(s))
    }
}

impl From<String> for Topic {
    /// Kept as the `String`: no copy.
    fn from(s: String) -> Self {
        Self(Repr::Owned(s))
    }
}

impl From<&String> for Topic {
    /// Copied into a new `String`.
    fn from(s: &String) -> Self {
        Self(Repr::Owned(s.clone()))
    }
}

impl From<Arc<str>> for Topic {
    /// Shared: no copy.
    fn from(s: Arc<str>) -> Self {
        Self(Repr::Shared(s))
    }
}

impl From<Box<str>> for Topic {
    fn from(s: Box<str>) -> Self {
        Self(Repr::Owned(s.into()))
    }
}

impl From<Cow<'static, str>> for Topic {
    fn from(s: Cow<'static, str>) -> Self {
        match s {
            Cow::Borrowed(s) => s.into(),
            Cow::Owned(s) => s.into(),
        }
    }
}

impl From<Topic> for String {
    fn from(t: Topic) -> Self {
        t.into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_compares_and_hashes_as_its_name() {
        use std::collections::hash_map::DefaultHasher;
        let forms = [
            Topic::from("orders"),
            Topic::from(String::from("orders")),
            Topic::from(&String::from("orders")),
            Topic::shared("orders"),
            Topic::from(Arc::<str>::from("orders")),
            Topic::from(Box::<str>::from("orders")),
            Topic::from(Cow::Owned(String::from("orders"))),
            Topic::from(Cow::Borrowed("orders")),
        ];
        let hash = |t: &Topic| {
            let mut h = DefaultHasher::new();
            t.hash(&mut h);
            h.finish()
        };
        for t in &forms {
            assert_eq!(t, &forms[0]);
            assert_eq!(*t, "orders");
            assert_eq!(&**t, "orders");
            assert_eq!(t.as_ref(), "orders");
            assert_eq!(t.to_string(), "orders");
            assert_eq!(format!("{t:?}"), "\"orders\"");
            assert_eq!(hash(t), hash(&forms[0]));
            assert_eq!(t.clone().into_string(), "orders");
            assert_eq!(String::from(t.clone()), "orders");
        }
        assert_ne!(Topic::from("a"), Topic::from("b"));
    }

    #[test]
    fn a_shared_topic_is_not_copied_by_clones() {
        let t = Topic::shared("orders");
        let u = t.clone();
        assert!(std::ptr::eq(t.as_str(), u.as_str()));
        let s: &'static str = "orders";
        assert!(std::ptr::eq(Topic::from(s).as_str(), s));
    }

    #[test]
    fn a_topic_is_no_larger_than_a_string() {
        assert_eq!(std::mem::size_of::<Topic>(), std::mem::size_of::<String>());
    }
}
