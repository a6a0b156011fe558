//! The run's Prometheus registry and the metrics every component and link has.
//!
//! One registry per pipeline (not the global default), so several pipelines can live in one process
//! (tests do this). Component-specific metrics (`broker_uptime`, `mqtt_received_data_packets_total`, …)
//! are registered by the stage that owns them through [`Metrics::register`].

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Registry plus the per-component and per-link families.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    records_in: IntCounterVec,
    records_out: IntCounterVec,
    records_dropped: IntCounterVec,
    restarts: IntCounterVec,
    up: IntGaugeVec,
    link_messages: IntCounterVec,
}

/// Error registering a metric (a duplicate name or bad labels): a programming error, reported with the name.
#[derive(Debug, thiserror::Error)]
#[error("metric registration failed: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// A fresh registry with the standard families.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let records_in =
            counter("chaoslab_records_in_total", "Records a component received.", &["component"])?;
        let records_out =
            counter("chaoslab_records_out_total", "Records a component emitted or stored.", &["component"])?;
        let records_dropped = counter(
            "chaoslab_records_dropped_total",
            "Records a component dropped, by reason.",
            &["component", "reason"],
        )?;
        let restarts =
            counter("chaoslab_component_restarts_total", "Restarts by the supervisor.", &["component"])?;
        let link_messages = counter(
            "chaoslab_link_messages_total",
            "Messages through a link, by outcome (sent, delivered, dropped_*, duplicated, corrupted).",
            &["link", "outcome"],
        )?;
        let up = IntGaugeVec::new(
            Opts::new("chaoslab_component_up", "1 while a component runs."),
            &["component"],
        )?;
        registry.register(Box::new(up.clone()))?;
        Ok(Metrics { registry, records_in, records_out, records_dropped, restarts, up, link_messages })
    }

    /// Registers a stage's own metric.
    pub fn register<C: Collector + Clone + 'static>(&self, c: &C) -> Result<(), MetricsError> {
        self.registry.register(Box::new(c.clone()))?;
        Ok(())
    }

    /// Registers a component's own families, each labelled `component="<name>"`, so that two components
    /// of one kind keep their series apart.
    pub fn scope(&self, component: &str) -> MetricScope {
        MetricScope { registry: self.registry.clone(), component: component.to_string() }
    }

    /// The sum of every series of the counter or gauge family `name` (0 when there is none).
    pub fn total(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| {
                let counter = f.get_field_type() == prometheus::proto::MetricType::COUNTER;
                f.get_metric().iter().map(move |m| {
                    if counter { m.get_counter().get_value() } else { m.get_gauge().get_value() }
                })
            })
            .sum()
    }

    /// The underlying registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in Prometheus text exposition format 0.0.4.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on metric families that violate the format, which we never build.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!("encoding metrics failed: {e}");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The counters of one component, resolved once.
    pub fn component(&self, name: &str) -> ComponentMetrics {
        ComponentMetrics {
            name: name.to_string(),
            records_in: self.records_in.with_label_values(&[name]),
            records_out: self.records_out.with_label_values(&[name]),
            dropped: self.records_dropped.clone(),
            restarts: self.restarts.with_label_values(&[name]),
            up: self.up.with_label_values(&[name]),
        }
    }

    /// The counter for one link and outcome.
    pub fn link(&self, link: &str, outcome: &str) -> IntCounter {
        self.link_messages.with_label_values(&[link, outcome])
    }
}

/// Registers metrics of one component (see [`Metrics::scope`]).
#[derive(Clone)]
pub struct MetricScope {
    registry: Registry,
    component: String,
}

impl MetricScope {
    /// Options for a family of this component: `name`, `help` and the `component` label.
    pub fn opts(&self, name: &str, help: &str) -> Opts {
        Opts::new(name, help).const_label("component", &self.component)
    }

    fn register<C: Collector + Clone + 'static>(&self, c: C) -> Result<C, MetricsError> {
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    /// A counter.
    pub fn counter(&self, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
        self.counter_with(self.opts(name, help))
    }

    /// A counter with options made by [`MetricScope::opts`] (e.g. with more constant labels).
    pub fn counter_with(&self, opts: Opts) -> Result<IntCounter, MetricsError> {
        self.register(IntCounter::with_opts(opts)?)
    }

    /// A counter family with labels.
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        self.register(IntCounterVec::new(self.opts(name, help), labels)?)
    }

    /// A gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        self.register(IntGauge::with_opts(self.opts(name, help))?)
    }

    /// A float gauge.
    pub fn float_gauge(&self, name: &str, help: &str) -> Result<prometheus::Gauge, MetricsError> {
        self.register(prometheus::Gauge::with_opts(self.opts(name, help))?)
    }

    /// A float gauge family with labels.
    pub fn float_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<prometheus::GaugeVec, MetricsError> {
        self.register(prometheus::GaugeVec::new(self.opts(name, help), labels)?)
    }

    /// A gauge family with labels.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, MetricsError> {
        self.register(IntGaugeVec::new(self.opts(name, help), labels)?)
    }

    /// A histogram family with labels.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: Vec<f64>,
        labels: &[&str],
    ) -> Result<HistogramVec, MetricsError> {
        let opts = HistogramOpts::new(name, help).const_label("component", &self.component).buckets(buckets);
        self.register(HistogramVec::new(opts, labels)?)
    }
}

/// One component's standard counters.
#[derive(Clone)]
pub struct ComponentMetrics {
    name: String,
    /// Records received.
    pub records_in: IntCounter,
    /// Records emitted or stored.
    pub records_out: IntCounter,
    dropped: IntCounterVec,
    /// Supervisor restarts.
    pub restarts: IntCounter,
    /// 1 while running.
    pub up: IntGauge,
}

impl ComponentMetrics {
    /// Counts one dropped record with its reason.
    pub fn dropped(&self, reason: &str) {
        self.dropped_n(reason, 1);
    }

    /// Counts `n` dropped records with their reason.
    pub fn dropped_n(&self, reason: &str, n: u64) {
        if n > 0 {
            self.dropped.with_label_values(&[&self.name, reason]).inc_by(n);
        }
    }

    /// Records dropped for all reasons.
    pub fn dropped_total(&self) -> u64 {
        let mut total = 0;
        for family in self.dropped.collect() {
            for m in family.get_metric() {
                let mine = m.get_label().iter().any(|l| l.name() == "component" && l.value() == self.name);
                if mine {
                    total += m.get_counter().get_value() as u64;
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_counters_show_in_text_format() {
        let m = Metrics::new().unwrap();
        let flink = m.component("FLINK");
        flink.records_in.inc_by(3);
        flink.dropped("invalid");
        flink.dropped("invalid");
        m.component("NIFI").dropped("loss");
        assert_eq!(flink.dropped_total(), 2);
        let text = m.encode();
        assert!(text.contains("chaoslab_records_in_total{component=\"FLINK\"} 3"), "{text}");
        assert!(text.contains("chaoslab_records_dropped_total{component=\"FLINK\",reason=\"invalid\"} 2"));
    }
}
