//! Counters the broker keeps about everything it does.

/// A snapshot of the broker's counters (monotonic unless marked as a gauge).
///
/// Counters survive [`Broker::restart`](crate::Broker::restart) in
/// both modes, so a test can compare before and after.
///
/// # Examples
///
/// ```
/// let s = mq_broker::BrokerStats::default();
/// assert_eq!(s.messages_stored, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "admin", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BrokerStats {
    /// Connections that completed the handshake with `Welcome`.
    pub connections_accepted: u64,
    /// Connections answered with `Refuse` (version, token or limit).
    pub connections_refused: u64,
    /// Gauge: connections currently open past the handshake.
    pub connections_open: u64,
    /// Connections closed by the broker for a protocol error (bad frame,
    /// oversized length prefix, unexpected frame, unknown subscription).
    pub protocol_errors: u64,
    /// Connections dropped for a heartbeat or handshake timeout.
    pub timeouts: u64,
    /// Distinct messages landed.
    pub messages_stored: u64,
    /// `Message` frames with `attempt > 1`.
    pub retransmits_received: u64,
    /// `Reply { Duplicate }` answers.
    pub duplicates_answered: u64,
    /// `Reply { Rejected }` answers.
    pub rejected: u64,
    /// `Reply` frames produced (before faults); with disk storage, counted
    /// when released (once the message is durable).
    pub replies_sent: u64,
    /// `Deliver` frames produced, first deliveries and redeliveries.
    pub deliveries_sent: u64,
    /// `Deliver` frames with `delivery_attempt > 1`.
    pub redeliveries_sent: u64,
    /// `Ack` frames received.
    pub acks_received: u64,
    /// Acks ignored because the ID was not outstanding with that subscription.
    pub acks_ignored: u64,
    /// `Nack` frames received.
    pub nacks_received: u64,
    /// Messages moved to the dead-letter list (per group).
    pub dead_lettered: u64,
    /// Messages removed from the store after every group acked (or
    /// dead-lettered) them.
    pub messages_deleted: u64,
    /// Gauge: messages stored now.
    pub stored_messages: u64,
    /// Gauge: payload plus header bytes stored now.
    pub stored_bytes: u64,
    /// Gauge: entries in the redelivery timer queue, including stale ones
    /// left behind by acks until their deadline passes.
    pub timer_entries: u64,
    /// IDs the dedup table forgot because of its bounds.
    pub dedup_evictions: u64,
    /// Frames discarded by `to_broker.drop` or `from_broker.drop`.
    pub frames_dropped_by_faults: u64,
    /// Frames duplicated by faults.
    pub frames_duplicated_by_faults: u64,
    /// Frames delayed by faults.
    pub frames_delayed_by_faults: u64,
    /// Replies to landed messages discarded by `drop_reply_after_store`.
    pub replies_dropped_after_store: u64,
    /// Connections cut by `cut_after_frames` or `cut_probability`.
    pub connections_cut_by_faults: u64,
    /// Calls to `crash` and `restart`.
    pub crashes: u64,
    /// Disk storage: fdatasync calls of the journal (one per group commit).
    pub journal_syncs: u64,
    /// Disk storage: zeros written (and synced) ahead of the journal's
    /// data, so that a batch's fdatasync overwrites blocks instead of
    /// growing the file; off the critical path, one per zero chunk.
    pub journal_zero_fills: u64,
    /// Disk storage, gauge: journal bytes on disk.
    pub journal_bytes: u64,
    /// Disk storage, gauge: journal segment files.
    pub journal_segments: u64,
    /// Disk storage: checkpoints written (each reclaims older segments).
    pub checkpoints: u64,
    /// Disk storage, gauge: mean duration of one journal write plus its
    /// fdatasync, in microseconds.
    pub journal_write_micros_avg: u64,
    /// `Subscribe` frames answered with `SubscribeError`.
    pub subscriptions_refused: u64,
    /// `Nack`s whose `delay_ms` was above `max_nack_delay` (cut to it).
    pub nack_delays_capped: u64,
    /// Times a connection's output queue reached `max_output_bytes`, so the
    /// broker stopped reading from it (and delivering to it) until it drained.
    pub output_full: u64,
    /// Connections dropped because their writes made no progress (a peer
    /// that does not read).
    pub write_stalls: u64,
    /// TLS handshakes completed on the TLS listener (each connection then
    /// goes on to the protocol's own handshake).
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out (a plaintext client on the
    /// TLS port, a client without a valid certificate under mutual TLS, a
    /// peer that stalls): each closed that connection only.
    pub tls_handshake_failures: u64,
}

impl std::fmt::Display for BrokerStats {
    /// One line of `key=value` pairs, the form both broker binaries log.
    ///
    /// # Examples
    ///
    /// ```
    /// let line = mq_broker::BrokerStats::default().to_string();
    /// assert!(line.starts_with("connections=0 "));
    /// assert!(line.contains(" journal_syncs=0"));
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connections={} stored_messages={} stored_bytes={} messages_stored={} \
             duplicates={} rejected={} deliveries={} redeliveries={} acks={} nacks={} \
             dead_lettered={} deleted={} protocol_errors={} timeouts={} journal_syncs={} \
             journal_bytes={} journal_segments={} checkpoints={} journal_write_us_avg={} journal_zero_fills={}",
            self.connections_open,
            self.stored_messages,
            self.stored_bytes,
            self.messages_stored,
            self.duplicates_answered,
            self.rejected,
            self.deliveries_sent,
            self.redeliveries_sent,
            self.acks_received,
            self.nacks_received,
            self.dead_lettered,
            self.messages_deleted,
            self.protocol_errors,
            self.timeouts,
            self.journal_syncs,
            self.journal_bytes,
            self.journal_segments,
            self.checkpoints,
            self.journal_write_micros_avg,
            self.journal_zero_fills,
        )
    }
}
