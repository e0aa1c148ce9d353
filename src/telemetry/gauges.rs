//! Gauges that can be *removed*: one series per arm of an experiment or per
//! study, dropped when the experiment or study is deleted.
//!
//! Why not the `metrics` facade: it has no way to unregister a series, so a
//! deleted experiment's per-arm gauges would be scraped (frozen at their
//! last value) until the process restarts, and a dashboard or alert would
//! keep showing an experiment that no longer exists. These families live
//! here instead, process-global like the facade's recorder (several test
//! servers in one process share one exporter), and the exporter appends
//! their text to the facade's (see [`super::install_exporter`]).
//!
//! Cardinality is bounded by the callers (the experiment and study label
//! caps of [`super::Telemetry`], and at most [`super::MAX_ARM_LABELS`] arms).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// One series' labels, in the order they are rendered.
type Labels = Vec<(&'static str, String)>;

struct Family {
    help: &'static str,
    series: BTreeMap<Labels, f64>,
}

/// Every removable gauge family, by metric name.
#[derive(Default)]
pub struct Gauges {
    families: Mutex<BTreeMap<&'static str, Family>>,
    /// Bumped (under the `families` lock) by every removal: see
    /// [`Gauges::set_unless_removed_since`].
    removals: AtomicU64,
}

/// One series' value, for [`Gauges::set_unless_removed_since`].
pub struct Sample<'a> {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'a [(&'static str, &'a str)],
    pub value: f64,
}

static GLOBAL: OnceLock<Gauges> = OnceLock::new();

/// The process-wide families (what the exporter renders).
pub fn global() -> &'static Gauges {
    GLOBAL.get_or_init(Gauges::default)
}

impl Gauges {
    /// Set `name{labels} = value` (creating the series).
    pub fn set(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        let key: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        // A poisoned lock only means a panic elsewhere; the map stays valid.
        let mut f = self.families.lock().unwrap_or_else(|p| p.into_inner());
        f.entry(name)
            .or_insert_with(|| Family {
                help,
                series: BTreeMap::new(),
            })
            .series
            .insert(key, v);
    }

    /// The removal count, read before computing values from the store.
    pub fn removals(&self) -> u64 {
        self.removals.load(Ordering::SeqCst)
    }

    /// Set every sample, unless a removal happened since `removals` was
    /// read (then none, and `false`): values computed from a read that
    /// raced with a deletion must not bring the deleted series back. The
    /// next periodic refresh sets them if they still exist.
    pub fn set_unless_removed_since(&self, removals: u64, samples: &[Sample<'_>]) -> bool {
        let mut f = self.families.lock().unwrap_or_else(|p| p.into_inner());
        if self.removals.load(Ordering::SeqCst) != removals {
            return false;
        }
        for s in samples {
            let key: Labels = s.labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
            f.entry(s.name)
                .or_insert_with(|| Family {
                    help: s.help,
                    series: BTreeMap::new(),
                })
                .series
                .insert(key, s.value);
        }
        true
    }

    /// Remove every series of every family whose label `label` is `value`
    /// (e.g. `experiment="checkout"` when checkout is deleted).
    pub fn remove(&self, label: &str, value: &str) {
        let mut f = self.families.lock().unwrap_or_else(|p| p.into_inner());
        self.removals.fetch_add(1, Ordering::SeqCst);
        for fam in f.values_mut() {
            fam.series
                .retain(|k, _| !k.iter().any(|(l, v)| *l == label && v == value));
        }
    }

    /// The value of one series (tests and the periodic task's bookkeeping).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let f = self.families.lock().unwrap_or_else(|p| p.into_inner());
        f.get(name)?
            .series
            .iter()
            .find(|(k, _)| {
                k.len() == labels.len()
                    && k.iter()
                        .zip(labels)
                        .all(|((a, b), (c, d))| a == c && b == d)
            })
            .map(|(_, v)| *v)
    }

    /// Prometheus text format (0.0.4) of every non-empty family.
    pub fn render(&self) -> String {
        let f = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, fam) in f.iter().filter(|(_, fam)| !fam.series.is_empty()) {
            let _ = writeln!(out, "# HELP {name} {}", fam.help);
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, v) in &fam.series {
                out.push_str(name);
                out.push('{');
                for (i, (l, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{l}=\"{}\"", escape(val));
                }
                let _ = writeln!(out, "}} {}", number(*v));
            }
            out.push('\n');
        }
        out
    }
}

/// Label values escape backslash, double quote and newline (the text format).
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Sample values as the text format spells them.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_render_and_remove() {
        let g = Gauges::default();
        g.set("m", "help", &[("experiment", "a\"b"), ("arm", "x")], 0.5);
        g.set("m", "help", &[("experiment", "c"), ("arm", "x")], 1.0);
        g.set("n", "other", &[("experiment", "c"), ("arm", "y")], f64::NAN);
        let text = g.render();
        assert!(text.contains("# TYPE m gauge\n"), "{text}");
        assert!(
            text.contains("m{experiment=\"a\\\"b\",arm=\"x\"} 0.5\n"),
            "{text}"
        );
        assert!(
            text.contains("n{experiment=\"c\",arm=\"y\"} NaN\n"),
            "{text}"
        );
        assert_eq!(g.get("m", &[("experiment", "c"), ("arm", "x")]), Some(1.0));
        g.remove("experiment", "c");
        let text = g.render();
        assert!(!text.contains("experiment=\"c\""), "{text}");
        // An emptied family renders nothing, not even its TYPE line.
        assert!(!text.contains("# TYPE n"), "{text}");
        assert!(text.contains("m{experiment=\"a\\\"b\""), "{text}");
    }

    #[test]
    fn a_removal_in_between_drops_a_batch() {
        let g = Gauges::default();
        let before = g.removals();
        let labels = [("experiment", "e")];
        let batch = [Sample {
            name: "m",
            help: "h",
            labels: &labels,
            value: 1.0,
        }];
        g.remove("experiment", "e");
        assert!(!g.set_unless_removed_since(before, &batch));
        assert_eq!(g.get("m", &labels), None);
        assert!(g.set_unless_removed_since(g.removals(), &batch));
        assert_eq!(g.get("m", &labels), Some(1.0));
    }
}
