//! Id sequencing of a trade stream: Binance trade ids (`t`) and aggregate ids (`a`) increase by
//! one per symbol, so a hole is a gap, a repeat is a duplicate, and a smaller id is out of order.

/// What one id means for its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first id seen (no cursor yet), or exactly last + 1.
    Next,
    /// Ids `from..=to` are missing before this one; the id itself is accepted.
    Gap {
        /// First missing id.
        from: u64,
        /// Last missing id.
        to: u64,
    },
    /// The id was already delivered (equal to the last, or inside a range delivered before).
    Duplicate,
    /// The id is below the last one and was not delivered: it arrived out of order. It is
    /// counted and logged; the hole it falls into was already reported as a gap.
    Backwards,
}

/// The last delivered id of one (venue, symbol, stream kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sequencer {
    last: Option<u64>,
}

impl Sequencer {
    /// A sequencer that resumes after `last` (a stored cursor), or starts fresh.
    pub fn resume(last: Option<u64>) -> Self {
        Sequencer { last }
    }

    /// The last delivered id.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Classifies `id` and advances the cursor when the id is delivered (`Next` or `Gap`).
    pub fn observe(&mut self, id: u64) -> Verdict {
        match self.last {
            None => {
                self.last = Some(id);
                Verdict::Next
            }
            Some(last) if id == last.wrapping_add(1) => {
                self.last = Some(id);
                Verdict::Next
            }
            Some(last) if id > last => {
                self.last = Some(id);
                Verdict::Gap {
                    from: last + 1,
                    to: id - 1,
                }
            }
            Some(last) if id == last => Verdict::Duplicate,
            Some(_) => Verdict::Backwards,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_ids() {
        let mut s = Sequencer::default();
        assert_eq!(s.observe(10), Verdict::Next);
        assert_eq!(s.observe(11), Verdict::Next);
        assert_eq!(s.observe(11), Verdict::Duplicate);
        assert_eq!(s.observe(15), Verdict::Gap { from: 12, to: 14 });
        assert_eq!(s.observe(13), Verdict::Backwards);
        assert_eq!(s.observe(16), Verdict::Next);
        assert_eq!(s.last(), Some(16));
        let mut r = Sequencer::resume(Some(100));
        assert_eq!(r.observe(100), Verdict::Duplicate);
        assert_eq!(r.observe(102), Verdict::Gap { from: 101, to: 101 });
    }
}
