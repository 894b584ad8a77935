//! Prometheus text format and OpenMetrics parsing (to be written).
