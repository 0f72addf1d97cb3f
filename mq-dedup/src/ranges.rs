//! One producer's seen sequences: [`Ranges`].

use std::collections::BTreeMap;
use std::mem::size_of;

/// Estimated heap bytes of one range stored below a producer's highest
/// range: its key and value and its share of B-tree nodes (nodes at least
/// half full). Measured: about 34 bytes when ranges arrive in order.
pub const RANGE_BYTES: usize = 48;
/// The first leaf of a producer's lower-range B-tree, allocated whole for
/// one range.
pub(crate) const LEAF_BYTES: usize = 192;
/// The heap cost of having lower ranges at all: the boxed map header and
/// its first leaf.
pub(crate) const LOWER_FIXED_BYTES: usize = size_of::<BTreeMap<u64, u64>>() + LEAF_BYTES;

/// What [`Ranges::insert`] did.
///
/// # Examples
///
/// ```
/// use mq_dedup::{Insert, Ranges};
/// let mut r = Ranges::new(5);
/// assert_eq!(r.insert(5), Insert::Present);
/// assert_eq!(r.insert(6), Insert::Extended);
/// assert_eq!(r.insert(9), Insert::Added);
/// assert_eq!(r.insert(8), Insert::Extended);
/// assert_eq!(r.insert(7), Insert::Joined);
/// assert_eq!(r.range_count(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Already there; nothing changed.
    Present,
    /// A range grew by one at either end; the number of ranges is the same.
    Extended,
    /// A new one-element range: one range more.
    Added,
    /// It filled the one-element gap between two ranges, which became one:
    /// one range less.
    Joined,
}

impl Insert {
    /// The change in the number of ranges: -1, 0 or 1.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_dedup::Insert::Joined.range_delta(), -1);
    /// ```
    pub fn range_delta(self) -> isize {
        match self {
            Insert::Present | Insert::Extended => 0,
            Insert::Added => 1,
            Insert::Joined => -1,
        }
    }
}

/// One producer's seen sequences as sorted, disjoint, non-adjacent
/// inclusive ranges; never empty.
///
/// The highest range is stored inline (a producer that sends in order costs
/// these 24 bytes and no heap); the lower ones, gaps left by sequences not
/// seen here, in a boxed B-tree allocated only when there are some.
///
/// Two ranges are only ever joined by the one sequence between them;
/// [`Ranges::pop_lowest`] forgets a whole range. So [`Ranges::contains`] is
/// true only for a sequence that was inserted.
///
/// # Examples
///
/// ```
/// use mq_dedup::Ranges;
/// let mut r = Ranges::new(1);
/// for seq in [2, 3, 10, 11] {
///     r.insert(seq);
/// }
/// assert_eq!(r.iter().collect::<Vec<_>>(), vec![(1, 3), (10, 11)]);
/// assert!(r.contains(2) && !r.contains(4));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    /// The highest range, inclusive.
    start: u64,
    end: u64,
    /// The ranges below `start`: start -> end, inclusive, disjoint, not
    /// adjacent (nor adjacent to `start`); `None` rather than empty.
    /// Boxed: 8 bytes in every producer's slot instead of 24, for a map
    /// most producers (those sending in order) never have.
    #[allow(clippy::box_collection)]
    lower: Option<Box<BTreeMap<u64, u64>>>,
}

impl Ranges {
    /// The set holding only `seq`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = mq_dedup::Ranges::new(7);
    /// assert_eq!(r.highest(), (7, 7));
    /// ```
    pub fn new(seq: u64) -> Self {
        Self {
            start: seq,
            end: seq,
            lower: None,
        }
    }

    /// The set holding `start..=end`; `None` if `start > end`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = mq_dedup::Ranges::from_range(3, 9).unwrap();
    /// assert_eq!(r.highest(), (3, 9));
    /// assert!(mq_dedup::Ranges::from_range(9, 3).is_none());
    /// ```
    pub fn from_range(start: u64, end: u64) -> Option<Self> {
        (start <= end).then_some(Self {
            start,
            end,
            lower: None,
        })
    }

    /// True if `seq` is in one of the ranges.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = mq_dedup::Ranges::from_range(3, 9).unwrap();
    /// assert!(r.contains(3) && r.contains(9) && !r.contains(10));
    /// ```
    pub fn contains(&self, seq: u64) -> bool {
        if seq >= self.start {
            return seq <= self.end;
        }
        self.lower.as_ref().is_some_and(|g| {
            g.range(..=seq)
                .next_back()
                .is_some_and(|(_, &end)| end >= seq)
        })
    }

    /// Adds `seq`, joining it to a range it touches.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_dedup::{Insert, Ranges};
    /// let mut r = Ranges::new(1);
    /// assert_eq!(r.insert(3), Insert::Added);
    /// assert_eq!(r.range_count(), 2);
    /// ```
    pub fn insert(&mut self, s: u64) -> Insert {
        if s >= self.start {
            if s <= self.end {
                return Insert::Present;
            }
            // `end < s`, so `end + 1` cannot overflow.
            if s == self.end + 1 {
                self.end = s;
                return Insert::Extended;
            }
            // A new highest range; the old one goes below.
            let (start, end) = (self.start, self.end);
            self.lower_mut().insert(start, end);
            (self.start, self.end) = (s, s);
            return Insert::Added;
        }
        // `s < start`, so `s + 1` cannot overflow and `s + 1 <= start`.
        let joins_top = s + 1 == self.start;
        let prev = self
            .lower
            .as_ref()
            .and_then(|g| g.range(..=s).next_back().map(|(&a, &b)| (a, b)));
        if prev.is_some_and(|(_, end)| end >= s) {
            return Insert::Present;
        }
        // `prev.end < s`, so `end + 1` cannot overflow.
        let joins_prev = prev
            .filter(|&(_, end)| end + 1 == s)
            .map(|(start, _)| start);
        if joins_top {
            let Some(start) = joins_prev else {
                self.start = s;
                return Insert::Extended;
            };
            self.remove_lower(start);
            self.start = start;
            return Insert::Joined;
        }
        let g = self.lower_mut();
        let next = g.get(&(s + 1)).copied();
        match (joins_prev, next) {
            (Some(start), Some(end)) => {
                g.remove(&(s + 1));
                g.insert(start, end);
                Insert::Joined
            }
            (Some(start), None) => {
                g.insert(start, s);
                Insert::Extended
            }
            (None, Some(end)) => {
                g.remove(&(s + 1));
                g.insert(s, end);
                Insert::Extended
            }
            (None, None) => {
                g.insert(s, s);
                Insert::Added
            }
        }
    }

    /// Adds every sequence of `start..=end`, joining the ranges it overlaps
    /// or touches. Returns the change in the number of ranges, or `None`
    /// if nothing was added (every sequence was there, or `start > end`).
    /// For restoring a checkpoint: its cost grows with the ranges it
    /// swallows, O(log n) each.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut r = mq_dedup::Ranges::new(1);
    /// r.insert(5);
    /// r.insert(9);
    /// assert_eq!(r.insert_range(2, 8), Some(-2));
    /// assert_eq!(r.iter().collect::<Vec<_>>(), vec![(1, 9)]);
    /// assert_eq!(r.insert_range(3, 4), None);
    /// ```
    pub fn insert_range(&mut self, start: u64, end: u64) -> Option<isize> {
        if start > end || self.covers(start, end) {
            return None;
        }
        let before = self.range_count();
        let (mut lo, mut hi) = (start, end);
        let top_touched = self.start <= hi.saturating_add(1) && self.end.saturating_add(1) >= lo;
        if top_touched {
            lo = lo.min(self.start);
            hi = hi.max(self.end);
        }
        if let Some(g) = self.lower.as_mut() {
            // Every lower range ending at or after `lo - 1` and starting at
            // or before `hi + 1` is swallowed.
            let swallowed: Vec<(u64, u64)> = g
                .range(..=hi.saturating_add(1))
                .rev()
                .take_while(|&(_, &e)| e.saturating_add(1) >= lo)
                .map(|(&s, &e)| (s, e))
                .collect();
            for (s, e) in swallowed {
                g.remove(&s);
                lo = lo.min(s);
                hi = hi.max(e);
            }
            if g.is_empty() {
                self.lower = None;
            }
        }
        if top_touched {
            (self.start, self.end) = (lo, hi);
        } else if lo > self.end {
            let (start, end) = (self.start, self.end);
            self.lower_mut().insert(start, end);
            (self.start, self.end) = (lo, hi);
        } else {
            self.lower_mut().insert(lo, hi);
        }
        // Both counts are ranges held in memory, far below `isize::MAX`.
        Some(self.range_count() as isize - before as isize)
    }

    /// True if one range holds all of `start..=end` (`start <= end`).
    fn covers(&self, start: u64, end: u64) -> bool {
        if start >= self.start {
            return end <= self.end;
        }
        self.lower.as_ref().is_some_and(|g| {
            g.range(..=start)
                .next_back()
                .is_some_and(|(_, &e)| e >= end)
        })
    }

    /// Forgets the lowest range, unless it is the only one (a set is never
    /// empty: drop it instead). Returns the range forgotten.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut r = mq_dedup::Ranges::new(1);
    /// r.insert(5);
    /// assert_eq!(r.pop_lowest(), Some((1, 1)));
    /// assert_eq!(r.pop_lowest(), None);
    /// assert!(r.contains(5) && !r.contains(1));
    /// ```
    pub fn pop_lowest(&mut self) -> Option<(u64, u64)> {
        let g = self.lower.as_mut()?;
        let first = g.pop_first();
        if g.is_empty() {
            self.lower = None;
        }
        first
    }

    /// The number of ranges, at least one.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_dedup::Ranges::from_range(1, 1_000_000).unwrap().range_count(), 1);
    /// ```
    pub fn range_count(&self) -> usize {
        1 + self.lower.as_ref().map_or(0, |g| g.len())
    }

    /// The highest range, `(start, end)` inclusive.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut r = mq_dedup::Ranges::new(1);
    /// r.insert(3);
    /// assert_eq!(r.highest(), (3, 3));
    /// ```
    pub fn highest(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    /// The ranges, lowest first, as inclusive `(start, end)` pairs.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut r = mq_dedup::Ranges::new(4);
    /// r.insert(2);
    /// assert_eq!(r.iter().collect::<Vec<_>>(), vec![(2, 2), (4, 4)]);
    /// ```
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        self.lower
            .iter()
            .flat_map(|g| g.iter().map(|(&s, &e)| (s, e)))
            .chain(std::iter::once((self.start, self.end)))
    }

    /// An estimate, from above, of the heap bytes held (the inline highest
    /// range is not heap): none for one range; for more, the boxed B-tree
    /// with its first leaf and [`RANGE_BYTES`] per range below the highest.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut r = mq_dedup::Ranges::from_range(0, 99).unwrap();
    /// assert_eq!(r.heap_bytes(), 0);
    /// r.insert(200);
    /// assert!(r.heap_bytes() > 0);
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.lower
            .as_ref()
            .map_or(0, |g| LOWER_FIXED_BYTES + g.len() * RANGE_BYTES)
    }

    /// True if there are ranges below the highest (heap in use).
    pub(crate) fn has_lower(&self) -> bool {
        self.lower.is_some()
    }

    fn lower_mut(&mut self) -> &mut BTreeMap<u64, u64> {
        self.lower.get_or_insert_with(Default::default)
    }

    fn remove_lower(&mut self, start: u64) {
        if let Some(g) = self.lower.as_mut() {
            g.remove(&start);
            if g.is_empty() {
                self.lower = None;
            }
        }
    }
}

#[cfg(test)]
#[path = "ranges_tests.rs"]
mod tests;
