//! Failover under load: see below.
