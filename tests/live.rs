//! The live view: its renderer pinned by golden files (a fixed state, 80
//! and 100 columns), and the real binary under tmux — the view appears on a
//! terminal, shows every product, fits 80 columns, and nothing but it
//! (no WARN line) reaches the terminal before the report.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dualwrite::history::StockAfter;
use dualwrite::layout::width;
use dualwrite::progress::{render, ActiveFault, Counts, LiveState, ProductLine};

fn golden(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{name} (UPDATE_GOLDEN=1 writes it)"));
    assert_eq!(text, expected, "{name} changed; if on purpose, rerun with UPDATE_GOLDEN=1 and review the diff");
}

fn v(quantity: i64, version: i64) -> Option<StockAfter> {
    Some(StockAfter { quantity, version })
}

fn line(product_id: i32, database: Option<StockAfter>) -> ProductLine {
    ProductLine {
        product_id,
        read_at: Some(6000),
        database,
        cache: database,
        from_cache: false,
        consumer: database,
        cache_stale_since: None,
        consumer_differs_since: None,
    }
}

/// naive during a Kafka fault: two products behind, one never read yet.
fn naive() -> LiveState {
    let mut products = vec![line(1, v(985, 5)), line(2, v(990, 3)), line(3, v(977, 8)), line(4, v(1000, 0))];
    products[0].consumer = v(991, 3);
    products[0].consumer_differs_since = Some(4600);
    products[2].consumer = v(988, 4);
    products[2].consumer_differs_since = Some(6800);
    products[3].consumer = None;
    products.push(ProductLine { read_at: None, ..line(5, None) });
    products.push(ProductLine { database: None, ..line(6, v(994, 2)) });
    LiveState {
        strategy: "naive".into(),
        position: Some((0, 6)),
        phase: "main".into(),
        elapsed: 6900,
        duration: 20_000,
        started: true,
        caches: false,
        publishes: true,
        counts: Counts { orders: 27, committed: 26, failed: 5, unknown: 1, skipped: 0 },
        undelivered: Some(3),
        faults: vec![
            ActiveFault { what: "kafka reset_peer".into(), until: 12_000 },
            ActiveFault { what: "postgres latency".into(), until: 8000 },
        ],
        products,
        more_products: 0,
        more_disagreeing: 0,
    }
}

/// cache-aside with a stale cache entry and many products.
fn cache_aside() -> LiveState {
    let mut products: Vec<ProductLine> = (1..=10).map(|p| line(p, v(1000 - i64::from(p), i64::from(p)))).collect();
    products[1].cache = v(999, 1);
    products[1].from_cache = true;
    products[1].cache_stale_since = Some(2100);
    products[4].from_cache = true;
    LiveState {
        strategy: "cache-aside".into(),
        position: None,
        phase: "main".into(),
        elapsed: 5300,
        duration: 8000,
        started: true,
        caches: true,
        publishes: false,
        counts: Counts { orders: 21, committed: 21, failed: 0, unknown: 2, skipped: 0 },
        undelivered: None,
        faults: Vec::new(),
        products,
        more_products: 90,
        more_disagreeing: 3,
    }
}

#[test]
fn the_live_view_is_pinned() {
    for (name, state) in [("naive", naive()), ("cache-aside", cache_aside())] {
        for columns in [80, 100] {
            let text = render(&state, columns);
            for l in text.lines() {
                assert!(width(l) <= columns, "wider than {columns}: {l:?}");
            }
            golden(&format!("live-{name}-{columns}.txt"), &format!("{text}\n"));
        }
    }
}

#[test]
fn before_the_main_phase_only_the_first_line_shows() {
    let state = LiveState { phase: "prepare".into(), started: false, ..naive() };
    let text = render(&state, 80);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("naive [1/6] · prepare"), "{text}");
}

#[test]
fn beats_that_placed_no_order_show_beside_the_counts_and_fit() {
    let mut state = naive();
    assert!(!render(&state, 100).contains("beats with no order"), "none skipped, none said");
    state.counts.skipped = 1234;
    for columns in [40, 80, 100] {
        let text = render(&state, columns);
        for l in text.lines() {
            assert!(width(l) <= columns, "wider than {columns}: {l:?}");
        }
        // Wrapped or not, the figure is there once, with its words.
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(flat.matches("beats with no order 1234").count(), 1, "{text}");
    }
}

#[test]
fn a_narrow_terminal_gets_lines_that_fit() {
    let mut state = naive();
    state.faults.push(ActiveFault { what: "redis timeout".into(), until: 9000 });
    for columns in [40, 50, 64] {
        for l in render(&state, columns).lines() {
            assert!(width(l) <= columns, "wider than {columns}: {l:?}");
        }
    }
}

/// A tmux server of this test's own, killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// `None` only when tmux is missing and DUALWRITE_SKIP_TERMINAL=1 says
    /// the test may skip; otherwise a missing tmux fails the test.
    fn new(name: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            if std::env::var_os("DUALWRITE_SKIP_TERMINAL").is_some() {
                return None;
            }
            panic!("tmux is not installed: `scripts/setup.sh --tests` installs it (or set DUALWRITE_SKIP_TERMINAL=1)");
        }
        Some(Tmux { socket: format!("dw-{name}-{}", std::process::id()) })
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pane's screen, wrapped lines joined (so a line too wide for the
    /// pane shows as one long line), with its scrollback.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "main"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// Starts `args` in a `columns`×40 tmux pane; `$?` ends up in `done`.
fn start(tmux: &Tmux, columns: usize, args: &str, done: &Path) {
    let command = format!("{} {args}; echo $? > {}; sleep 600", env!("CARGO_BIN_EXE_dualwrite"), done.display());
    let columns = columns.to_string();
    tmux.run(&["new-session", "-d", "-s", "main", "-x", &columns, "-y", "40", &command]);
}

fn wait_for_exit(done: &Path, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(code) = std::fs::read_to_string(done) {
            return code.trim().parse().ok();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn the_real_binary_shows_the_view_on_a_terminal_and_it_fits() {
    let Some(tmux) = Tmux::new("live") else { return };
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    start(&tmux, 80, "run naive --scenario kafka-resets --seed 1 --duration 8s", &done);

    // Watch the pane until the view shows every product. indicatif pads
    // each line of the view to the pane's width, so the rows are read as
    // the pane shows them (no joining): a line too wide for the pane would
    // push the rows below it down, and the rows would not follow each other.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        std::thread::sleep(Duration::from_millis(250));
        let screen = tmux.run(&["capture-pane", "-p", "-t", "main"]);
        let rows: Vec<&str> = screen.lines().collect();
        let Some(top) = rows.iter().position(|r| r.starts_with("naive · main · ")) else { continue };
        let expected =
            ["orders ", "faults now: ", "  product  database", "  1 ", "  2 ", "  3 ", "  4 ", "  5 ", "  6 "];
        let follows =
            expected.iter().enumerate().all(|(i, start)| rows.get(top + 1 + i).is_some_and(|r| r.starts_with(start)));
        let read = rows[top..].iter().filter(|r| r.contains(" v")).count() >= 6;
        if follows && read {
            seen = Some(rows[top..top + 10].join("\n"));
        }
    }
    let view = seen.unwrap_or_else(|| panic!("the live view never showed every product:\n{}", tmux.screen()));
    for l in view.lines() {
        assert!(width(l.trim_end()) < 80, "the live view is as wide as the pane: {l:?}\n{view}");
    }
    assert!(view.contains("consumer"), "{view}");

    let code = wait_for_exit(&done, Duration::from_secs(120));
    let screen = tmux.screen();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}\n{screen}");
    // The view is gone; the report is laid out for the pane; no log noise.
    assert!(screen.contains("naive: "), "{screen}");
    for l in screen.lines() {
        assert!(width(l) <= 80, "wider than the pane: {l:?}");
        assert!(!l.contains("WARN"), "a log line reached the terminal: {l:?}\n{screen}");
    }
}

/// `compare` on a 100-column terminal: the report is laid out for 100
/// columns (the tables unsplit), every line fits, no log line.
#[test]
fn compare_on_a_100_column_terminal_fits_it() {
    let Some(tmux) = Tmux::new("compare") else { return };
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    start(
        &tmux,
        100,
        "compare --strategies naive,cache-aside,outbox --scenario flaky-network --duration 4s --seed 3",
        &done,
    );
    let code = wait_for_exit(&done, Duration::from_secs(240));
    let screen = tmux.screen();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}\n{screen}");
    assert!(screen.contains("what the stores hold after the run:"), "{screen}");
    let widest = screen.lines().map(|l| width(l.trim_end())).max().unwrap_or(0);
    assert!(widest <= 100, "a line is wider than the pane ({widest}):\n{screen}");
    assert!(widest > 80, "the report was not laid out for the pane's 100 columns:\n{screen}");
    // One table, not split: the strategy column heads it once.
    let stores = screen.split("what the stores hold after the run:").nth(1).unwrap();
    let stores = stores.split("orders, latency").next().unwrap();
    assert_eq!(stores.lines().filter(|l| l.starts_with("strategy")).count(), 1, "{screen}");
    assert!(!screen.contains("WARN"), "{screen}");
}
