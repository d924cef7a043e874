//! The worker's Prometheus recorder, rendered by its `GET /metrics`: the process-wide one
//! (`cart_core::telemetry::prometheus`), holding the queue's metrics (`cart_queue::metrics`) and
//! the business events its jobs record.

use metrics_exporter_prometheus::PrometheusHandle;

/// Installs the process-wide recorder (once; later calls return the same handle).
pub fn install() -> PrometheusHandle {
    cart_core::telemetry::prometheus::recorder()
}
