//! [`Topic`]: a message's topic name, handed over without a copy.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::ptr::NonNull;
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
/// It takes two words (16 bytes on 64-bit targets): every in-flight
/// message keeps one.
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
pub struct Topic {
    /// The name's first byte, or (kind [`BOXED`]) a `Box<Repr>`.
    ptr: NonNull<u8>,
    /// The name's length in the low bits, the kind in the top two.
    tagged: usize,
}

// A `Topic` is 16 bytes, where an enum of `&'static str`, `Arc<str>` and
// `String` takes 24: every in-flight message keeps one (issue 18). The
// pointer and length of the name are stored as they are, and the kind of
// owner (which says how to clone and drop) in the length's top two bits;
// a name too long for the remaining bits (a quarter of the address space:
// only conceivable on a 32-bit target) is kept boxed instead.

/// The kind bits of [`Topic::tagged`].
const KIND_SHIFT: u32 = usize::BITS - 2;
const LEN_MASK: usize = (1 << KIND_SHIFT) - 1;
/// A `&'static str`.
const STATIC: usize = 0;
/// The data of an `Arc<str>` (`Arc::into_raw`).
const SHARED: usize = 1;
/// The data of a `Box<str>` (`Box::into_raw`).
const OWNED: usize = 2;
/// `ptr` is a `Box<Repr>`: a name of `LEN_MASK` bytes or more.
const BOXED: usize = 3;

/// The owner of a name, unpacked.
#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(Box<str>),
}

impl Repr {
    fn as_str(&self) -> &str {
        match self {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
            Repr::Owned(s) => s,
        }
    }
}

// SAFETY: a `Topic` owns (or shares) its name as a `&'static str`, an
// `Arc<str>` or a `Box<str>` (or a `Box` of one), all `Send` and `Sync`.
unsafe impl Send for Topic {}
// SAFETY: see above; `&Topic` only reads the name.
unsafe impl Sync for Topic {}

impl Topic {
    fn pack(repr: Repr) -> Self {
        Self::pack_below(repr, LEN_MASK)
    }

    /// Packs `repr`, or boxes it if its name is `limit` bytes or longer
    /// (`limit` is at most [`LEN_MASK`]; tests pass a small one).
    fn pack_below(repr: Repr, limit: usize) -> Self {
        let len = repr.as_str().len();
        if len >= limit {
            return Self::boxed(repr);
        }
        // A `str`'s pointer is never null (dangling, for an empty one), and
        // neither is what `Arc::into_raw` or `Box::into_raw` return; no
        // fallback pointer, which `from_raw` on drop could not take back.
        let (kind, ptr) = match repr {
            Repr::Static(s) => (STATIC, NonNull::from(s).cast::<u8>()),
            Repr::Shared(s) => (
                SHARED,
                NonNull::new(Arc::into_raw(s).cast::<u8>().cast_mut())
                    .expect("Arc::into_raw is never null"),
            ),
            Repr::Owned(s) => (
                OWNED,
                NonNull::new(Box::into_raw(s).cast::<u8>()).expect("Box::into_raw is never null"),
            ),
        };
        Self {
            ptr,
            tagged: (kind << KIND_SHIFT) | len,
        }
    }

    /// `repr` kept boxed (kind `BOXED`).
    fn boxed(repr: Repr) -> Self {
        let ptr = NonNull::from(Box::leak(Box::new(repr))).cast::<u8>();
        Self {
            ptr,
            tagged: BOXED << KIND_SHIFT,
        }
    }

    fn kind(&self) -> usize {
        self.tagged >> KIND_SHIFT
    }

    fn len_bits(&self) -> usize {
        self.tagged & LEN_MASK
    }

    /// The name's bytes as a raw `str` pointer (kinds other than `BOXED`).
    fn raw_str(&self) -> *mut str {
        std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len_bits()) as *mut str
    }

    /// Rebuilds the owner `pack` took apart.
    ///
    /// # Safety
    ///
    /// Once per topic: the owner then owns the name, and the topic must
    /// not be used or dropped again.
    unsafe fn rebuild(&self) -> Repr {
        // SAFETY: `pack` made `ptr` and `tagged` from an owner of this
        // kind and gave up its ownership; the caller rebuilds it once.
        unsafe {
            match self.kind() {
                STATIC => Repr::Static(&*self.raw_str()),
                SHARED => Repr::Shared(Arc::from_raw(self.raw_str())),
                OWNED => Repr::Owned(Box::from_raw(self.raw_str())),
                _ => *Box::from_raw(self.ptr.as_ptr().cast::<Repr>()),
            }
        }
    }

    /// Unpacks `self` into its owner.
    fn unpack(self) -> Repr {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped or used again.
        unsafe { this.rebuild() }
    }

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
        Self::pack(Repr::Shared(Arc::from(name)))
    }

    /// The name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_client_sender::Topic::from("t").as_str(), "t");
    /// ```
    pub fn as_str(&self) -> &str {
        if self.kind() == BOXED {
            // SAFETY: a `BOXED` topic owns this `Box<Repr>` until dropped.
            return unsafe { &*self.ptr.as_ptr().cast::<Repr>() }.as_str();
        }
        // SAFETY: the name's owner (static, or kept alive by this topic
        // until it is dropped) holds `len` bytes of UTF-8 at `ptr`.
        unsafe { &*self.raw_str() }
    }

    /// The name as an owned `String` (moved out if it owns one).
    ///
    /// # Examples
    ///
    /// ```
    /// let t = mq_client_sender::Topic::from(String::from("t"));
    /// assert_eq!(t.into_string(), "t");
    /// ```
    pub fn into_string(self) -> String {
        match self.unpack() {
            Repr::Owned(s) => s.into_string(),
            Repr::Static(s) => s.to_owned(),
            Repr::Shared(s) => s.as_ref().to_owned(),
        }
    }
}

impl Clone for Topic {
    fn clone(&self) -> Self {
        match self.kind() {
            STATIC => Self {
                ptr: self.ptr,
                tagged: self.tagged,
            },
            SHARED => {
                // SAFETY: this topic holds one count of the `Arc<str>`
                // whose data is at `ptr`; the clone holds another.
                unsafe { Arc::increment_strong_count(self.raw_str().cast_const()) };
                Self {
                    ptr: self.ptr,
                    tagged: self.tagged,
                }
            }
            OWNED => Self::pack(Repr::Owned(Box::from(self.as_str()))),
            _ => {
                // SAFETY: a `BOXED` topic owns this `Box<Repr>`.
                let repr = unsafe { &*self.ptr.as_ptr().cast::<Repr>() };
                Self::pack(repr.clone())
            }
        }
    }
}

impl Drop for Topic {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once, and nothing uses the topic after it.
        drop(unsafe { self.rebuild() });
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
        Self::pack(Repr::Static(s))
    }
}

impl From<String> for Topic {
    /// Kept as the `String`'s buffer (shrunk to fit), not copied.
    fn from(s: String) -> Self {
        Self::pack(Repr::Owned(s.into_boxed_str()))
    }
}

impl From<&String> for Topic {
    /// Copied.
    fn from(s: &String) -> Self {
        Self::pack(Repr::Owned(Box::from(s.as_str())))
    }
}

impl From<Arc<str>> for Topic {
    /// Shared: no copy.
    fn from(s: Arc<str>) -> Self {
        Self::pack(Repr::Shared(s))
    }
}

impl From<Box<str>> for Topic {
    /// Kept as the box: no copy.
    fn from(s: Box<str>) -> Self {
        Self::pack(Repr::Owned(s))
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
        // Against `str` and `&str` too, both ways of the answer.
        let a = Topic::from("a");
        assert!(a == *"a" && a != *"b");
        assert!(a == "a" && a != "b");
        assert_ne!(hash(&a), hash(&Topic::from("b")), "the name is hashed");
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
    fn a_topic_is_two_words() {
        use std::mem::size_of;
        assert_eq!(size_of::<Topic>(), 2 * size_of::<usize>());
        assert_eq!(size_of::<Option<Topic>>(), 2 * size_of::<usize>());
    }

    /// Every kind of owner, packed and (as a name too long for the length
    /// bits would be) boxed.
    fn every_owner(name: &'static str) -> Vec<Topic> {
        let owners = || {
            [
                Repr::Static(name),
                Repr::Shared(Arc::from(name)),
                Repr::Owned(Box::from(name)),
            ]
        };
        let mut all: Vec<Topic> = owners().into_iter().map(Topic::pack).collect();
        all.extend(owners().into_iter().map(Topic::boxed));
        all
    }

    #[test]
    fn every_owner_reads_clones_and_gives_back_its_name() {
        for name in ["orders", ""] {
            for (i, t) in every_owner(name).into_iter().enumerate() {
                assert_eq!(t.kind(), [STATIC, SHARED, OWNED, BOXED][i.min(3)], "{i}");
                assert_eq!(t.as_str(), name);
                let c = t.clone();
                // A boxed name's clone is packed again (it fits).
                assert_eq!(c.kind(), [STATIC, SHARED, OWNED][i % 3], "{i}");
                drop(t);
                assert_eq!(c.as_str(), name, "a clone outlives its original");
                let d = c.clone();
                assert_eq!(c.into_string(), name);
                assert_eq!(String::from(d), name);
            }
        }
    }

    #[test]
    fn an_owned_name_is_moved_in_and_out_and_a_clone_is_a_copy() {
        let s = String::from("orders");
        let p = s.as_ptr();
        let t = Topic::from(s);
        assert_eq!(t.as_str().as_ptr(), p, "the String's buffer, not a copy");
        let c = t.clone();
        assert_ne!(c.as_str().as_ptr(), p, "an owned name is copied by clone");
        let back = t.into_string();
        assert_eq!(back.as_ptr(), p, "given back without a copy");
        assert_eq!(c, "orders");
    }

    #[test]
    fn a_name_too_long_for_the_length_bits_is_boxed() {
        for (i, repr) in [
            Repr::Static("orders"),
            Repr::Shared(Arc::from("orders")),
            Repr::Owned(Box::from("orders")),
        ]
        .into_iter()
        .enumerate()
        {
            let packed = Topic::pack_below(repr.clone(), 7);
            assert_eq!(packed.kind(), [STATIC, SHARED, OWNED][i]);
            assert_eq!(packed.len_bits(), 6);
            let boxed = Topic::pack_below(repr, 6);
            assert_eq!(boxed.kind(), BOXED, "6 bytes do not fit below 6");
            assert_eq!(boxed.as_str(), "orders");
            assert_eq!(packed, boxed);
        }
        assert!(
            LEN_MASK >= u32::MAX as usize / 4,
            "a quarter of the address space"
        );
    }

    #[test]
    fn shared_counts_follow_clones_and_drops() {
        let a: Arc<str> = Arc::from("orders");
        let t = Topic::from(a.clone());
        assert_eq!(Arc::strong_count(&a), 2);
        let c = t.clone();
        assert_eq!(Arc::strong_count(&a), 3);
        drop(t);
        assert_eq!(Arc::strong_count(&a), 2);
        assert_eq!(c.into_string(), "orders");
        assert_eq!(Arc::strong_count(&a), 1);
        let b = Topic::boxed(Repr::Shared(a.clone()));
        let bc = b.clone();
        assert_eq!(Arc::strong_count(&a), 3);
        drop((b, bc));
        assert_eq!(Arc::strong_count(&a), 1);
    }

    #[test]
    fn a_topic_crosses_threads() {
        fn send_sync<
            T: Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe + Unpin,
        >() {
        }
        send_sync::<Topic>();
        let t = Topic::shared("orders");
        let c = t.clone();
        let h = std::thread::spawn(move || c.into_string());
        assert_eq!(h.join().unwrap(), t.as_str());
    }
}
