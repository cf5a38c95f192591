//! Internal detection ("assume breach"): a subject that accumulates denies, or touches
//! sensitive actions, faster than a threshold gets its risk raised for a while, as if a risk
//! engine had sent a `risk-level-change`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Kind, RiskLevel, Signal};

/// Most subjects counted at once; the least recently seen are forgotten beyond it.
pub const MAX_TRACKED_SUBJECTS: u64 = 100_000;

/// When to raise a subject's risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectionRule {
    /// The counting window.
    pub window: Duration,
    /// More denies than this in one window raise the risk (0: denies are not counted).
    pub max_denies: u32,
    /// More decisions on sensitive actions than this in one window raise the risk (0: not
    /// counted).
    pub max_sensitive: u32,
    /// The level raised to.
    pub raise_to: RiskLevel,
    /// How long the raised level lasts.
    pub hold: Duration,
}

#[derive(Debug, Default)]
struct Counter {
    window_start_ms: AtomicI64,
    denies: AtomicU32,
    sensitive: AtomicU32,
    raised: AtomicBool,
}

/// Counts decisions per subject.
pub struct Detector {
    rule: DetectionRule,
    counters: moka::sync::Cache<String, Arc<Counter>>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// A detector applying `rule`.
    pub fn new(rule: DetectionRule) -> Detector {
        Detector {
            rule,
            counters: moka::sync::Cache::builder()
                .max_capacity(MAX_TRACKED_SUBJECTS)
                .time_to_idle(rule.window.saturating_mul(2).max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// Counts one decision for `subject` at `now_ms` (epoch milliseconds); returns the
    /// risk signal to publish when this decision crosses a threshold (once per window).
    pub fn observe(
        &self,
        subject: &str,
        denied: bool,
        sensitive: bool,
        now_ms: i64,
    ) -> Option<Signal> {
        let counts_deny = denied && self.rule.max_denies > 0;
        let counts_sensitive = sensitive && self.rule.max_sensitive > 0;
        if subject.is_empty() || !(counts_deny || counts_sensitive) {
            return None;
        }
        let c = self.counters.get_with_by_ref(subject, || {
            Arc::new(Counter {
                window_start_ms: AtomicI64::new(now_ms),
                ..Counter::default()
            })
        });
        let window_ms = i64::try_from(self.rule.window.as_millis()).unwrap_or(i64::MAX);
        let start = c.window_start_ms.load(Ordering::Acquire);
        if now_ms.saturating_sub(start) >= window_ms
            && c.window_start_ms
                .compare_exchange(start, now_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            c.denies.store(0, Ordering::Release);
            c.sensitive.store(0, Ordering::Release);
            c.raised.store(false, Ordering::Release);
        }
        let denies = if counts_deny {
            c.denies.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            c.denies.load(Ordering::Acquire)
        };
        let touched = if counts_sensitive {
            c.sensitive.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            c.sensitive.load(Ordering::Acquire)
        };
        let over_denies = self.rule.max_denies > 0 && denies > self.rule.max_denies;
        let over_sensitive = self.rule.max_sensitive > 0 && touched > self.rule.max_sensitive;
        if !(over_denies || over_sensitive) || c.raised.swap(true, Ordering::AcqRel) {
            return None;
        }
        let now = now_ms.div_euclid(1000);
        let mut s = Signal::new(Kind::RiskLevelChange, now);
        s.subject = subject.to_owned();
        s.risk = Some(self.rule.raise_to);
        s.until =
            Some(now.saturating_add(i64::try_from(self.rule.hold.as_secs()).unwrap_or(i64::MAX)));
        s.reason = if over_denies {
            format!(
                "detected: {denies} denies within {} s",
                self.rule.window.as_secs()
            )
        } else {
            format!(
                "detected: {touched} sensitive actions within {} s",
                self.rule.window.as_secs()
            )
        };
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(DetectionRule {
            window: Duration::from_secs(10),
            max_denies: 3,
            max_sensitive: 2,
            raise_to: RiskLevel::High,
            hold: Duration::from_secs(60),
        })
    }

    #[test]
    fn denies_past_the_threshold_raise_the_risk_once_per_window() {
        let d = detector();
        let seen: Vec<bool> = (0..6)
            .map(|i| d.observe("a", true, false, 1_000 + i).is_some())
            .collect();
        assert_eq!(seen, [false, false, false, true, false, false]);
        let raised = d.observe("b", true, false, 0);
        assert!(raised.is_none(), "counters are per subject");
        // A new window counts afresh.
        let again: Vec<bool> = (0..4)
            .map(|i| d.observe("a", true, false, 20_000 + i).is_some())
            .collect();
        assert_eq!(again, [false, false, false, true]);
    }

    #[test]
    fn sensitive_actions_count_even_when_allowed() {
        let d = detector();
        assert!(d.observe("a", false, true, 0).is_none());
        assert!(d.observe("a", false, true, 1).is_none());
        let s = d.observe("a", false, true, 2_000);
        assert_eq!(s.as_ref().and_then(|s| s.risk), Some(RiskLevel::High));
        assert_eq!(s.and_then(|s| s.until), Some(62));
        assert!(
            d.observe("a", false, false, 3).is_none(),
            "allows of other actions do not count"
        );
    }
}
