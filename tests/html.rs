//! The picture (`--html`): its marks tied to the report's JSON — one mark
//! per order, coloured by the order's fate — for fixed reports and for a
//! real run; the same picture from a saved `--json`; and a real browser
//! (Debian's chromium, headless) that renders it with no console error,
//! no network request, and a screenshot that is not blank and shows the
//! fates' colours.
//!
//! The browser tests need chromium (`scripts/setup.sh --tests` installs
//! it); without it they fail, unless DUALWRITE_SKIP_BROWSER=1 says to skip
//! them.

mod fixtures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dualwrite::report::html::{colour, render, Picture};
use dualwrite::report::timeline::Fate;
use dualwrite::strategy::Strategy;

/// One `<circle class="mark…">` of the picture.
#[derive(Debug)]
struct Mark {
    run: String,
    order: String,
    fate: String,
    fill: String,
    cx: f64,
}

fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The marks of a picture, with the run (the `<svg data-run>`) each is in.
fn marks(html: &str) -> Vec<Mark> {
    let mut run = String::new();
    let mut found = Vec::new();
    for line in html.lines() {
        if line.starts_with("<svg class=\"timeline\"") {
            run = attribute(line, "data-run").unwrap().to_string();
        }
        if line.starts_with("<circle class=\"mark") {
            found.push(Mark {
                run: run.clone(),
                order: attribute(line, "data-order").unwrap().to_string(),
                fate: attribute(line, "data-fate").unwrap().to_string(),
                fill: attribute(line, "fill").unwrap().to_string(),
                cx: attribute(line, "cx").unwrap().parse().unwrap(),
            });
        }
    }
    found
}

/// Checks every run's marks against the report's JSON: one per order, the
/// order's fate, the fate's colour, placed in the order the orders began.
fn check_marks(json: &serde_json::Value, html: &str) {
    let marks = marks(html);
    let fates: BTreeMap<&str, Fate> = Fate::ALL.iter().map(|f| (f.key(), *f)).collect();
    for run in json["runs"].as_array().unwrap() {
        let strategy = run["strategy"].as_str().unwrap();
        let orders = run["timeline"]["orders"].as_array().unwrap();
        let mine: BTreeMap<&str, &Mark> =
            marks.iter().filter(|m| m.run == strategy).map(|m| (m.order.as_str(), m)).collect();
        assert_eq!(mine.len(), orders.len(), "{strategy}: one mark per order");
        assert_eq!(orders.len() as u64, run["orders"]["attempted"].as_u64().unwrap(), "{strategy}");
        let mut last_x = f64::MIN;
        let mut by_begin: Vec<&serde_json::Value> = orders.iter().collect();
        by_begin.sort_by_key(|o| o["begun_at"].as_u64().unwrap());
        for order in by_begin {
            let id = order["order_id"].as_str().unwrap();
            let mark = mine.get(id).unwrap_or_else(|| panic!("{strategy}: no mark for order {id}"));
            let fate = order["fate"].as_str().unwrap();
            assert_eq!(mark.fate, fate, "{strategy}: order {id}");
            assert_eq!(mark.fill, colour(fates[fate]), "{strategy}: order {id} is coloured by its fate");
            assert!(mark.cx >= last_x, "{strategy}: marks follow the time axis");
            last_x = mark.cx;
        }
        // The colours add up to the table's counts.
        let count = |fate: &str| mine.values().filter(|m| m.fate == fate).count() as u64;
        if let Some(lost) = run["anomalies"]["lost"].as_u64() {
            assert_eq!(count("lost"), lost, "{strategy}: lost marks");
        }
        if let Some(ghost) = run["anomalies"]["ghost"].as_u64() {
            assert_eq!(count("ghost"), ghost, "{strategy}: ghost marks");
        }
    }
}

#[test]
fn every_order_is_one_mark_coloured_by_its_fate() {
    let report = fixtures::report(&fixtures::MODELLED);
    let html = render(&Picture::of(&report).unwrap());
    check_marks(&serde_json::to_value(&report).unwrap(), &html);
    // Every fate the fixtures produce is drawn, and the legend names it.
    for fate in ["delivered", "committed", "rolled_back", "lost", "ghost", "duplicate", "recovered"] {
        assert!(marks(&html).iter().any(|m| m.fate == fate), "{fate}");
        assert!(html.contains(&format!("{fate}:").replace('_', " ")), "legend: {fate}");
    }
}

/// Effectively-once, shown in the picture as in the text: the fixture's
/// outbox delivered three orders twice, and the sentence carries the JSON's
/// figures.
#[test]
fn the_picture_says_what_duplicates_would_have_cost() {
    let report = fixtures::report(&fixtures::MODELLED);
    let outbox = report.runs.iter().find(|r| r.strategy == "outbox").unwrap();
    let r = outbox.redeliveries.expect("the fixture's topic is read whole");
    assert!(r.duplicates > 0);
    let html = render(&Picture::of(&report).unwrap());
    let line = format!(
        "<b>outbox</b>: {} duplicate deliveries arrived; the idempotent consumer discarded {} deliveries; a \
         consumer that applied every delivery would have shipped {} extra units",
        r.duplicates,
        r.discarded_by_consumer.unwrap(),
        r.extra_units
    );
    assert!(html.contains(&line), "{line}");
}

#[test]
fn the_picture_is_self_contained() {
    let html = render(&Picture::of(&fixtures::report(&fixtures::MODELLED)).unwrap());
    assert!(html.starts_with("<!DOCTYPE html>"));
    for external in ["http://", "https://", "src=", "<link", "@import", "url("] {
        assert!(!html.contains(external), "the picture refers to something outside it: {external}");
    }
    assert!(!html.contains("<script"), "the picture needs no script");
}

#[test]
fn stories_sit_beside_the_marks_they_explain() {
    let report = fixtures::report(&[Strategy::Naive]);
    let html = render(&Picture::of(&report).unwrap());
    let story = &report.runs[0].stories[0];
    let order = story.order_id.unwrap().simple().to_string();
    // The story links to the mark, and a numbered badge beside the mark
    // links back to the story.
    assert!(html.contains(&format!("href=\"#mark-naive-{order}\"")), "story → mark");
    assert!(html.contains(&format!("id=\"mark-naive-{order}\"")), "the mark");
    assert!(html.contains("<a href=\"#story-naive-1\"><g class=\"badge\">"), "badge → story");
}

#[test]
fn drift_is_drawn_opening_and_closing() {
    let report = fixtures::report(&[Strategy::Naive]);
    let html = render(&Picture::of(&report).unwrap());
    // naive lost events during the Kafka fault: the consumer fell behind on
    // some product, and the shaded span says when.
    let drift = html.lines().filter(|l| l.starts_with("<rect class=\"drift\"")).count();
    assert!(drift > 0, "no drift span drawn");
    assert!(html.contains("the consumer's view differs from the database,"));
    assert_eq!(html.matches("<path class=\"db\"").count(), 3, "one database line per product");
    assert_eq!(html.matches("<path class=\"consumer\"").count(), 3, "one consumer line per product");
}

#[test]
fn a_saved_json_gives_the_same_picture() {
    let report = fixtures::report(&fixtures::MODELLED);
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let mut file = std::fs::File::create(&json).unwrap();
    report.write_json(&mut file).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["report", "--from", json.to_str().unwrap(), "--html", html.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&html).unwrap(), render(&Picture::of(&report).unwrap()));
}

#[test]
fn a_file_that_is_not_a_report_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"seed\": 1}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["report", "--from", bad.to_str().unwrap(), "--html", dir.path().join("x.html").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot draw the picture of") && stderr.contains("not a dualwrite report"), "{stderr}");
    assert!(!dir.path().join("x.html").exists());
}

// ── the real browser ─────────────────────────────────────────────────────

/// What chromium made of a page.
struct Rendered {
    /// The page's console messages (errors included).
    console: Vec<String>,
    /// URLs the page itself asked the network for.
    requests: Vec<String>,
    screenshot: PathBuf,
}

/// Debian's chromium, or `None` when the tests may skip without it.
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output() {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !path.is_empty() {
                return Some(PathBuf::from(path));
            }
        }
    }
    if std::env::var_os("DUALWRITE_SKIP_BROWSER").is_some() {
        return None;
    }
    panic!("chromium is not installed: `scripts/setup.sh --tests` installs it (or set DUALWRITE_SKIP_BROWSER=1)");
}

/// Renders `page` headless, with a fresh profile, logging the console to
/// stderr and the network to a net log, and takes a screenshot.
fn browse(chromium: &Path, page: &Path, dir: &Path, height: u32) -> Rendered {
    let screenshot = dir.join(format!("{}.png", page.file_stem().unwrap().to_string_lossy()));
    let net_log = dir.join("net-log.json");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--log-net-log={}", net_log.display()))
        .arg(format!("--window-size=1400,{height}"))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Chromium logs each console message as `INFO:CONSOLE:<line>] "…"`.
    let console = stderr.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    // A request the page made has the page's (file://) site for cookies;
    // chromium's own background requests do not.
    let log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&net_log).expect("chromium wrote its net log")).expect("a JSON net log");
    let mut requests: Vec<String> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let p = &e["params"];
            let url = p["url"].as_str()?;
            let from_page = p["site_for_cookies"].as_str().is_some_and(|s| s.contains("site=file://"));
            (from_page && !url.starts_with("file:")).then(|| url.to_string())
        })
        .collect();
    // The same request can appear in several events, not only in a row.
    requests.sort();
    requests.dedup();
    assert!(out.status.success(), "chromium failed: {stderr}");
    Rendered { console, requests, screenshot }
}

/// Pixels of a screenshot: how many are not white, and which colours occur.
fn pixels(png: &Path) -> (f64, std::collections::HashSet<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "an RGB screenshot");
    let mut colours = std::collections::HashSet::new();
    let mut inked = 0usize;
    let total = (info.width * info.height) as usize;
    for px in buf[..info.buffer_size()].chunks(channels) {
        let rgb = [px[0], px[1], px[2]];
        if rgb != [255, 255, 255] {
            inked += 1;
        }
        colours.insert(rgb);
    }
    (inked as f64 / total as f64, colours)
}

fn hex(colour: &str) -> [u8; 3] {
    let v = u32::from_str_radix(colour.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// The detector itself: a page with a script error and an outside image
/// must be caught, or a clean result below would mean nothing.
#[test]
fn the_browser_check_catches_errors_and_requests() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("control.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><p>control</p><script>console.error('control error'); nowhere();</script>\
         <img src=\"http://example.invalid/x.png\">",
    )
    .unwrap();
    let r = browse(&chromium, &page, dir.path(), 400);
    assert!(r.console.iter().any(|l| l.contains("control error")), "{:?}", r.console);
    assert!(r.console.iter().any(|l| l.contains("Uncaught ReferenceError")), "{:?}", r.console);
    assert!(r.requests.iter().any(|u| u.contains("example.invalid")), "{:?}", r.requests);
}

#[test]
fn chromium_renders_the_picture_with_no_error_and_shows_the_timelines() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("compare.html");
    let report = fixtures::report(&fixtures::MODELLED);
    std::fs::write(&page, render(&Picture::of(&report).unwrap())).unwrap();
    let r = browse(&chromium, &page, dir.path(), 2600);
    assert!(r.console.is_empty(), "console messages: {:#?}", r.console);
    assert!(r.requests.is_empty(), "the page asked the network for {:#?}", r.requests);
    let (inked, colours) = pixels(&r.screenshot);
    assert!(inked > 0.05, "the screenshot is nearly blank: {:.1} % inked", inked * 100.0);
    // The marks are drawn: the fates' colours are on the screen.
    for fate in [Fate::Delivered, Fate::Lost, Fate::Ghost, Fate::Committed] {
        assert!(colours.contains(&hex(colour(fate))), "no pixel of {fate:?}'s colour {}", colour(fate));
    }
    if let Some(keep) = std::env::var_os("DUALWRITE_KEEP_SCREENSHOT") {
        std::fs::copy(&r.screenshot, keep).unwrap();
    }
}

/// A real run, drawn: its marks agree with its own JSON, and chromium
/// renders it cleanly.
#[test]
fn a_real_run_draws_every_order_it_placed() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let out = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "naive", "--scenario", "kafka-resets", "--seed", "1", "--duration", "6s", "--json"])
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("picture: {}", html.display())), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    check_marks(&report, &page);
    assert!(!report["runs"][0]["timeline"]["orders"].as_array().unwrap().is_empty());
    if let Some(chromium) = chromium() {
        let r = browse(&chromium, &html, dir.path(), 1400);
        assert!(r.console.is_empty(), "console messages: {:#?}", r.console);
        assert!(r.requests.is_empty(), "{:#?}", r.requests);
        assert!(pixels(&r.screenshot).0 > 0.05, "blank screenshot");
    }
}
