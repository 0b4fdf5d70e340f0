//! The publisher's bookkeeping of one MQTT session as a plain state machine: the queue of
//! messages waiting for room, the window of publishes sent and not yet acknowledged, which
//! outbox row each packet id carries, the outbox cursor, and the rows acknowledged but not yet
//! marked published. No I/O and no clock of its own, so every rule is unit-tested without a
//! broker.
//!
//! The publisher numbers each publish as it encodes it (see `link`); the broker acknowledges by
//! packet id, in any order.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// What a queued publish carries, so its PUBACK can be attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// The outbox row with this id.
    Outbox(i64),
    /// Anything else (health, audit, republished envelopes, repairs).
    Other,
}

/// One message to publish (QoS 1).
#[derive(Debug)]
pub(crate) struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub tag: Tag,
}

/// One session's publishes, from queued to acknowledged.
#[derive(Debug)]
pub(crate) struct Window {
    /// Most publishes sent and not yet acknowledged.
    limit: usize,
    /// Messages waiting for a place in the window.
    queue: VecDeque<Msg>,
    /// Tags by packet id, waiting for their PUBACK.
    in_flight: HashMap<u16, Tag>,
    /// Messages sent and not yet acknowledged.
    outstanding: usize,
    /// The last outbox id queued in this session.
    cursor: i64,
    /// Acknowledged outbox ids not yet marked published.
    acked: Vec<i64>,
}

impl Window {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            queue: VecDeque::new(),
            in_flight: HashMap::new(),
            outstanding: 0,
            cursor: 0,
            acked: Vec::new(),
        }
    }

    /// Queues a message behind the others.
    pub fn push_back(&mut self, msg: Msg) {
        self.queue.push_back(msg);
    }

    /// Queues a message ahead of the others (health goes first).
    pub fn push_front(&mut self, msg: Msg) {
        self.queue.push_front(msg);
    }

    /// Moves the cursor past an outbox row read in this session.
    pub fn advance(&mut self, id: i64) {
        self.cursor = self.cursor.max(id);
    }

    /// The last outbox id queued in this session: rows after it are still to be read.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Messages waiting for room.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next message to send, if the window has room. Call [`sent`](Self::sent) once it
    /// has its packet id.
    pub fn next(&mut self) -> Option<Msg> {
        if self.outstanding >= self.limit {
            return None;
        }
        self.queue.pop_front()
    }

    /// The message tagged `tag` went out under `pkid`: it holds a place until acknowledged.
    pub fn sent(&mut self, tag: Tag, pkid: u16) {
        self.in_flight.insert(pkid, tag);
        self.outstanding += 1;
    }

    /// The broker acknowledged `pkid`: frees its place, and returns the outbox row it carried
    /// (now waiting to be marked published). Unknown packet ids change nothing.
    pub fn acknowledged(&mut self, pkid: u16) -> Option<i64> {
        let tag = self.in_flight.remove(&pkid)?;
        self.outstanding = self.outstanding.saturating_sub(1);
        match tag {
            Tag::Outbox(id) => {
                self.acked.push(id);
                Some(id)
            }
            Tag::Other => None,
        }
    }

    /// A new session (after a connect or a lost connection): nothing is in flight any more and
    /// the outbox is read again from the start. Acknowledged rows stay, to be marked published.
    pub fn reset(&mut self) {
        self.queue.clear();
        self.in_flight.clear();
        self.outstanding = 0;
        self.cursor = 0;
    }

    /// How many acknowledged rows wait to be marked published.
    pub fn acked(&self) -> usize {
        self.acked.len()
    }

    /// The acknowledged rows, to mark published now.
    pub fn take_acked(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.acked)
    }

    /// When to mark the acknowledged rows published: `after` the first of them was
    /// acknowledged (a deadline already set stays), never when there are none.
    pub fn flush_at(&self, set: Option<Instant>, now: Instant, after: Duration) -> Option<Instant> {
        if self.acked.is_empty() {
            None
        } else {
            Some(set.unwrap_or(now + after))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: Tag) -> Msg {
        Msg {
            topic: "t".into(),
            payload: Vec::new(),
            retain: true,
            tag,
        }
    }

    /// Reads outbox row `id` into the queue.
    fn row(w: &mut Window, id: i64) {
        w.advance(id);
        w.push_back(msg(Tag::Outbox(id)));
    }

    /// Sends everything the window lets through, numbering from `first_pkid`.
    fn send_all(w: &mut Window, first_pkid: u16) -> Vec<Tag> {
        let mut sent = Vec::new();
        while let Some(m) = w.next() {
            w.sent(m.tag, first_pkid + sent.len() as u16);
            sent.push(m.tag);
        }
        sent
    }

    #[test]
    fn no_more_than_the_window_is_unacknowledged_at_once() {
        let mut w = Window::new(2);
        for id in 1..=3 {
            row(&mut w, id);
        }
        assert_eq!(send_all(&mut w, 1), [Tag::Outbox(1), Tag::Outbox(2)]);
        assert_eq!(w.queued(), 1, "the third waits for room");
        assert_eq!(w.acknowledged(2), Some(2));
        assert_eq!(send_all(&mut w, 3), [Tag::Outbox(3)]);
    }

    #[test]
    fn acknowledgements_are_attributed_by_packet_id_in_any_order() {
        let mut w = Window::new(8);
        row(&mut w, 10);
        row(&mut w, 11);
        send_all(&mut w, 1);
        assert_eq!(w.acknowledged(2), Some(11));
        assert_eq!(w.acknowledged(1), Some(10));
        assert_eq!(w.take_acked(), [11, 10]);
        assert_eq!(w.acked(), 0);
    }

    #[test]
    fn other_messages_take_room_but_mark_no_row() {
        let mut w = Window::new(1);
        w.push_back(msg(Tag::Other));
        row(&mut w, 5);
        assert_eq!(send_all(&mut w, 1), [Tag::Other]);
        assert_eq!(w.acknowledged(1), None);
        assert_eq!(w.acked(), 0);
        assert_eq!(send_all(&mut w, 2), [Tag::Outbox(5)], "room again");
    }

    #[test]
    fn unknown_or_repeated_packet_ids_change_nothing() {
        let mut w = Window::new(1);
        row(&mut w, 1);
        row(&mut w, 2);
        send_all(&mut w, 7);
        assert_eq!(w.acknowledged(99), None);
        assert!(w.next().is_none(), "a stray PUBACK frees no room");
        assert_eq!(w.acknowledged(7), Some(1));
        assert_eq!(w.acknowledged(7), None, "a duplicate PUBACK counts once");
        assert_eq!(w.take_acked(), [1]);
    }

    #[test]
    fn health_goes_out_before_what_was_queued() {
        let mut w = Window::new(8);
        row(&mut w, 1);
        w.push_front(msg(Tag::Other));
        assert_eq!(send_all(&mut w, 1), [Tag::Other, Tag::Outbox(1)]);
    }

    #[test]
    fn a_new_session_forgets_what_was_in_flight_but_keeps_rows_to_mark() {
        let mut w = Window::new(2);
        for id in 1..=3 {
            row(&mut w, id);
        }
        send_all(&mut w, 1);
        assert_eq!(w.acknowledged(1), Some(1));
        assert_eq!(w.cursor(), 3);
        w.reset();
        assert_eq!((w.cursor(), w.queued()), (0, 0), "the outbox is read again");
        assert_eq!(
            w.acknowledged(2),
            None,
            "the old session's ids mean nothing"
        );
        row(&mut w, 2);
        row(&mut w, 3);
        assert_eq!(send_all(&mut w, 1).len(), 2, "the whole window is free");
        assert_eq!(w.take_acked(), [1], "the acknowledged row is still marked");
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledged_rows_are_marked_a_moment_after_the_first_of_them() {
        let after = Duration::from_millis(20);
        let mut w = Window::new(8);
        assert_eq!(w.flush_at(None, Instant::now(), after), None);
        row(&mut w, 1);
        row(&mut w, 2);
        send_all(&mut w, 1);
        w.acknowledged(1);
        let first = w.flush_at(None, Instant::now(), after);
        assert_eq!(first, Some(Instant::now() + after));
        tokio::time::advance(Duration::from_millis(15)).await;
        w.acknowledged(2);
        assert_eq!(
            w.flush_at(first, Instant::now(), after),
            first,
            "a later acknowledgement does not push the deadline back"
        );
        w.take_acked();
        assert_eq!(w.flush_at(first, Instant::now(), after), None);
    }
}
