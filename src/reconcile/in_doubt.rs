//! two-phase's own figure: the orders that were *in doubt* — prepared in
//! the database, their coordinator gone or out of touch, until recovery
//! finished them — and the orders that waited behind their locks.
//!
//! Pure, like the rest of the reconciler: the counts come from the
//! snapshot (the run's coordinator log and `pg_prepared_xacts`, read after
//! the drain), the story's times from the history.

use serde::Serialize;

use crate::history::{Event, Millis, OrderId};
use crate::snapshot::{InDoubt, Snapshot};

/// The in-doubt figure of a two-phase run, and the story of its longest lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InDoubtFigure {
    #[serde(flatten)]
    pub counts: InDoubt,
    /// "order 3f2a9c1e prepared at 6.1 s; coordinator crashed at 6.2 s;
    /// product 3 locked for 3.4 s; 9 orders waited".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub story: Option<String>,
}

/// The figure, when the snapshot has one (two-phase, backlog read).
pub fn in_doubt(history: &[Event], snapshot: &Snapshot) -> Option<InDoubtFigure> {
    let counts = snapshot.backlog.as_ref()?.as_ref().ok()?.in_doubt?;
    let story = counts.longest.map(|longest| {
        let prepared_at = wrote_at(history, longest.order_id);
        let product = longest.product_id.or_else(|| product_of(history, longest.order_id));
        let mut parts = vec![match prepared_at {
            Some(at) => format!("order {} prepared at {}", short(longest.order_id), secs(at)),
            None => format!("order {} prepared", short(longest.order_id)),
        }];
        // The crash that left it in doubt: the first one after it prepared.
        if let Some(crash) = prepared_at.and_then(|at| crash_after(history, at)) {
            parts.push(format!("coordinator crashed at {}", secs(crash)));
        }
        let what = product.map_or("its product".to_string(), |p| format!("product {p}"));
        parts.push(format!("{what} locked for {}", secs(longest.locked_ms)));
        parts.push(match longest.waited {
            1 => "1 order waited".to_string(),
            n => format!("{n} orders waited"),
        });
        parts.join("; ")
    });
    Some(InDoubtFigure { counts, story })
}

/// In words, for the text report: what was in doubt and what it blocked.
pub fn describe(figure: &InDoubtFigure) -> String {
    let c = &figure.counts;
    let mut text = match c.resolved {
        0 => "no order in doubt".to_string(),
        n => format!(
            "{} in doubt ({} committed and {} rolled back by recovery; {} published again from the log)",
            plural(n, "order"),
            c.committed_by_recovery,
            n - c.committed_by_recovery,
            plural(c.republished, "event")
        ),
    };
    if c.most_prepared_seen > 0 {
        text.push_str(&format!(", at most {} in doubt in pg_prepared_xacts at once", c.most_prepared_seen));
    }
    if c.left_prepared > 0 {
        text.push_str(&format!(", {} still prepared after the drain", c.left_prepared));
    }
    text.push_str(&format!("; {} waited ≥ 100 ms on a row lock", plural(c.blocked, "order")));
    if let (Some(p99), Some(max)) = (c.lock_wait_p99_ms, c.lock_wait_max_ms) {
        text.push_str(&format!(" (lock wait p99 {p99} ms, worst {max} ms)"));
    }
    text
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn wrote_at(history: &[Event], id: OrderId) -> Option<Millis> {
    history.iter().find_map(|e| match e {
        Event::Wrote { at, order_id, .. } if *order_id == id => Some(*at),
        _ => None,
    })
}

fn product_of(history: &[Event], id: OrderId) -> Option<i32> {
    history.iter().find_map(|e| match e {
        Event::Begin { order, .. } if order.order_id == id => Some(order.product_id),
        _ => None,
    })
}

fn crash_after(history: &[Event], from: Millis) -> Option<Millis> {
    history.iter().find_map(|e| match e {
        Event::Crash { at, component, restarted: false } if component == "writer" && *at >= from => Some(*at),
        _ => None,
    })
}

fn short(id: OrderId) -> String {
    id.simple().to_string()[..8].to_string()
}

fn secs(ms: Millis) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}
