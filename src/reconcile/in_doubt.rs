//! two-phase's own figure: the orders that were *in doubt* — prepared in
//! the database, their coordinator gone or out of touch, until recovery
//! finished them — and the orders that waited behind their locks.
//!
//! Pure, like the rest of the reconciler: the counts come from the
//! snapshot (the run's coordinator log and `pg_prepared_xacts`, read after
//! the drain), the story's times from the history.

use serde::Serialize;

use crate::history::{Event, Events, Millis, OrderId};
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
pub fn in_doubt(history: &Events, snapshot: &Snapshot) -> Option<InDoubtFigure> {
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

fn wrote_at(history: &Events, id: OrderId) -> Option<Millis> {
    history.iter().find_map(|e| match e {
        Event::Wrote { at, order_id, .. } if order_id == id => Some(at),
        _ => None,
    })
}

fn product_of(history: &Events, id: OrderId) -> Option<i32> {
    history.iter().find_map(|e| match e {
        Event::Begin { order, .. } if order.order_id == id => Some(order.product_id),
        _ => None,
    })
}

fn crash_after(history: &Events, from: Millis) -> Option<Millis> {
    history.whole().find_map(|e| match e {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Order, StockAfter};
    use crate::snapshot::{Backlog, LongestLock};

    fn id(n: u128) -> OrderId {
        uuid::Uuid::from_u128(n)
    }

    fn snapshot(in_doubt: Option<InDoubt>) -> Snapshot {
        Snapshot { backlog: Some(Ok(Backlog { in_doubt, ..Backlog::default() })), ..Snapshot::default() }
    }

    #[test]
    fn the_story_of_the_longest_lock_comes_from_the_history() {
        let order = Order { order_id: id(0x3f2a9c1e << 96), product_id: 3, delta: -2, writer: 0, seq: 1 };
        let history = Events::from(vec![
            Event::Begin { at: 4_000, order: order.clone() },
            Event::Wrote { at: 4_100, order_id: order.order_id, after: StockAfter { quantity: 998, version: 1 } },
            Event::Crash { at: 4_200, component: "writer".into(), restarted: false },
            Event::Crash { at: 4_800, component: "writer".into(), restarted: true },
        ]);
        let counts = InDoubt {
            resolved: 2,
            committed_by_recovery: 1,
            republished: 1,
            blocked: 14,
            lock_wait_p99_ms: Some(3_900),
            lock_wait_max_ms: Some(4_000),
            most_prepared_seen: 2,
            // The log did not know the product (recovery decided): the history does.
            longest: Some(LongestLock { order_id: order.order_id, product_id: None, locked_ms: 6_000, waited: 14 }),
            ..InDoubt::default()
        };
        let figure = in_doubt(&history, &snapshot(Some(counts))).unwrap();
        assert_eq!(
            figure.story.as_deref(),
            Some("order 3f2a9c1e prepared at 4.1 s; coordinator crashed at 4.2 s; product 3 locked for 6.0 s; 14 orders waited")
        );
        assert_eq!(
            describe(&figure),
            "2 orders in doubt (1 committed and 1 rolled back by recovery; 1 event published again from the log), \
             at most 2 in doubt in pg_prepared_xacts at once; 14 orders waited ≥ 100 ms on a row lock (lock wait \
             p99 3900 ms, worst 4000 ms)"
        );
    }

    #[test]
    fn only_two_phase_has_the_figure() {
        assert_eq!(in_doubt(&Events::new(), &snapshot(None)), None);
        assert_eq!(in_doubt(&Events::new(), &Snapshot::default()), None);
        let quiet = in_doubt(&Events::new(), &snapshot(Some(InDoubt::default()))).unwrap();
        assert_eq!(quiet.story, None);
        assert_eq!(describe(&quiet), "no order in doubt; 0 orders waited ≥ 100 ms on a row lock");
    }
}
