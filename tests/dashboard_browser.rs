//! The dashboard in a real headless Chromium (Debian's `chromium`, driven over the DevTools
//! protocol by `headless_chrome`), against a real server on loopback with a seeded SQLite
//! book: a manager signs in through the form, opens every page, and no page logs a console
//! error, a failed load or a Content-Security-Policy violation, or throws; every chart
//! container ends with `data-drawn="true"`; on a phone-sized screen no page is wider than the
//! screen. A screenshot of each page is kept in `target/dashboard-screenshots/<page>.png`.
//!
//! Without Chromium at `/usr/bin/chromium` (or `ARREARS_CHROMIUM`) the test says why and
//! returns, unless `ARREARS_REQUIRE_BROWSER` is set (as `.ci/run` does): then it fails.

mod common;

use base64::Engine as _;
use common::app::spawn_app;
use common::dashboard::seed;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Emulation, Log, Page, Runtime};
use headless_chrome::{Browser, LaunchOptions, Tab};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pages opened, by screenshot name, and whether they have charts.
const PAGES: &[(&str, &str, bool)] = &[
    ("overview", "/dashboard", true),
    ("strategies", "/dashboard/strategies", true),
    ("experiments", "/dashboard/experiments", false),
    ("timing", "/dashboard/timing", true),
    ("operations", "/dashboard/operations", true),
    ("roll-trend", "/dashboard/roll?from_state=M1-early&to_state=M1", true),
    ("funder", "/dashboard/funder?funder=bank-a", true),
];

/// The Chromium binary, or `None` (after saying why) when it is absent and not required.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("ARREARS_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("ARREARS_REQUIRE_BROWSER").is_some_and(|value| !value.is_empty()) {
        panic!(
            "ARREARS_REQUIRE_BROWSER is set but there is no Chromium at {} (apt-get install chromium)",
            path.display()
        );
    }
    eprintln!(
        "dashboard_browser: skipped: no Chromium at {} (apt-get install chromium, or set ARREARS_CHROMIUM); \
         set ARREARS_REQUIRE_BROWSER=1 to make this a failure",
        path.display()
    );
    None
}

/// Where the screenshots go: `<target dir>/dashboard-screenshots/`.
fn screenshots_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("dashboard-screenshots")
}

/// Every console error, failed load, CSP violation and uncaught exception the tab reports.
fn watch(tab: &Tab) -> anyhow::Result<Arc<Mutex<Vec<String>>>> {
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&problems);
    tab.enable_log()?;
    tab.enable_runtime()?;
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let problem = match event {
            Event::RuntimeExceptionThrown(thrown) => {
                let details = &thrown.params.exception_details;
                let description = details.exception.as_ref().and_then(|e| e.description.clone()).unwrap_or_default();
                Some(format!("exception: {} {description}", details.text))
            }
            Event::RuntimeConsoleAPICalled(called)
                if matches!(
                    called.params.Type,
                    Runtime::ConsoleAPICalledEventTypeOption::Error | Runtime::ConsoleAPICalledEventTypeOption::Assert
                ) =>
            {
                let args: Vec<String> = called
                    .params
                    .args
                    .iter()
                    .map(|arg| arg.value.as_ref().map_or_else(|| format!("{:?}", arg.description), |v| v.to_string()))
                    .collect();
                Some(format!("console.error: {}", args.join(" ")))
            }
            Event::LogEntryAdded(entry) if matches!(entry.params.entry.level, Log::LogEntryLevel::Error) => {
                let entry = &entry.params.entry;
                Some(format!("log: {} ({})", entry.text, entry.url.clone().unwrap_or_default()))
            }
            _ => None,
        };
        if let Some(problem) = problem {
            seen.lock().unwrap().push(problem);
        }
    }))?;
    Ok(problems)
}

fn evaluate_f64(tab: &Tab, expression: &str) -> anyhow::Result<f64> {
    let value = tab.evaluate(expression, false)?.value;
    value.and_then(|value| value.as_f64()).ok_or_else(|| anyhow::anyhow!("{expression}: not a number"))
}

/// Waits (at most 20 s) until every chart container of the page has `data-drawn="true"`;
/// returns how many there are.
fn charts_drawn(tab: &Tab, page: &str) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = evaluate_f64(tab, "document.querySelectorAll('[data-chart]').length")? as usize;
        let drawn =
            evaluate_f64(tab, "document.querySelectorAll('[data-chart][data-drawn=\"true\"]').length")? as usize;
        if drawn == all {
            return Ok(all);
        }
        if Instant::now() > deadline {
            anyhow::bail!("{page}: {drawn} of {all} charts drawn after 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PNG of the whole page as laid out at the current width.
fn screenshot(tab: &Tab, name: &str) -> anyhow::Result<()> {
    let width = evaluate_f64(tab, "document.documentElement.scrollWidth")?;
    let height = evaluate_f64(tab, "document.documentElement.scrollHeight")?;
    let shot = tab.call_method(Page::CaptureScreenshot {
        format: Some(Page::CaptureScreenshotFormatOption::Png),
        quality: None,
        clip: Some(Page::Viewport { x: 0.0, y: 0.0, width, height, scale: 1.0 }),
        from_surface: Some(true),
        capture_beyond_viewport: Some(true),
        optimize_for_speed: None,
    })?;
    let png = base64::engine::general_purpose::STANDARD.decode(shot.data)?;
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

fn set_screen(tab: &Tab, width: u32, height: u32, mobile: bool) -> anyhow::Result<()> {
    tab.call_method(Emulation::SetDeviceMetricsOverride {
        width,
        height,
        device_scale_factor: 1.0,
        mobile,
        scale: None,
        screen_width: None,
        screen_height: None,
        position_x: None,
        position_y: None,
        dont_set_visible_size: None,
        screen_orientation: None,
        viewport: None,
        display_feature: None,
        device_posture: None,
    })?;
    Ok(())
}

fn open(tab: &Tab, url: &str) -> anyhow::Result<()> {
    tab.navigate_to(url)?;
    tab.wait_until_navigated()?;
    Ok(())
}

/// The whole visit; returns every problem the browser reported.
fn visit(chromium: &Path, base: &str, token: &str, funder_token: &str) -> anyhow::Result<Vec<String>> {
    let options = LaunchOptions::default_builder()
        .path(Some(chromium.to_path_buf()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1280, 900)))
        .args(vec![OsStr::new("--disable-dev-shm-usage"), OsStr::new("--no-first-run")])
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .map_err(|error| anyhow::anyhow!("launch options: {error}"))?;
    let browser = Browser::new(options)?;
    let tab = browser.new_tab()?;
    tab.set_default_timeout(Duration::from_secs(30));
    let problems = watch(&tab)?;
    set_screen(&tab, 1280, 900, false)?;

    // Not signed in: the dashboard sends the browser to the sign-in form.
    open(&tab, &format!("{base}/dashboard"))?;
    let url = tab.get_url();
    anyhow::ensure!(url.starts_with(&format!("{base}/dashboard/login")), "not sent to the sign-in page: {url}");
    screenshot(&tab, "login")?;
    // The token is pasted, as a person would (typing it key by key over the protocol is slow).
    tab.wait_for_element("input[name=token]")?;
    let paste = format!("document.querySelector('input[name=token]').value = {}; true", serde_json::to_string(token)?);
    tab.evaluate(&paste, false)?;
    tab.wait_for_element("form.login button[type=submit]")?.click()?;
    tab.wait_until_navigated()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while tab.get_url() != format!("{base}/dashboard") {
        anyhow::ensure!(Instant::now() < deadline, "signing in did not open the overview: {}", tab.get_url());
        std::thread::sleep(Duration::from_millis(50));
    }
    tab.wait_for_element("#funnel")?;

    for (name, path, has_charts) in PAGES {
        open(&tab, &format!("{base}{path}"))?;
        let title = tab.get_title()?;
        anyhow::ensure!(title.ends_with("· arrears"), "{name}: title {title:?} (url {})", tab.get_url());
        let charts = charts_drawn(&tab, name)?;
        anyhow::ensure!(!has_charts || charts > 0, "{name}: no chart on the page");
        screenshot(&tab, name)?;
    }

    // A phone: nothing wider than the screen (tables scroll inside their box), charts drawn.
    set_screen(&tab, 390, 844, true)?;
    for (name, path, _) in PAGES {
        open(&tab, &format!("{base}{path}"))?;
        charts_drawn(&tab, name)?;
        let overflow = evaluate_f64(&tab, "document.documentElement.scrollWidth - window.innerWidth")?;
        anyhow::ensure!(overflow <= 1.0, "{name}: {overflow} px wider than a 390 px phone screen");
        if *name == "overview" {
            screenshot(&tab, "overview-phone")?;
        }
    }
    // A funder signs in on the same form and lands on its own share, its charts drawn, with no
    // way to another page.
    set_screen(&tab, 1280, 900, false)?;
    open(&tab, &format!("{base}/dashboard/login"))?;
    tab.wait_for_element("input[name=token]")?;
    let paste =
        format!("document.querySelector('input[name=token]').value = {}; true", serde_json::to_string(funder_token)?);
    tab.evaluate(&paste, false)?;
    tab.wait_for_element("form.login button[type=submit]")?.click()?;
    tab.wait_until_navigated()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while tab.get_url() != format!("{base}/dashboard/funder") {
        anyhow::ensure!(Instant::now() < deadline, "a funder's sign-in did not open its page: {}", tab.get_url());
        std::thread::sleep(Duration::from_millis(50));
    }
    tab.wait_for_element("#funder-balances")?;
    anyhow::ensure!(charts_drawn(&tab, "funder (funder token)")? > 0, "the funder's page drew no chart");
    let links = evaluate_f64(&tab, "document.querySelectorAll('nav a[href^=\"/dashboard\"]').length")?;
    anyhow::ensure!(links <= 1.0, "a funder's navigation offers {links} dashboard pages");
    screenshot(&tab, "funder-token")?;
    let problems = problems.lock().unwrap().clone();
    Ok(problems)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_signs_in_and_every_page_draws_without_an_error() {
    let Some(chromium) = chromium() else {
        return;
    };
    let app = spawn_app(common::sqlite_db().await).await;
    seed(&app).await;
    let (base, token) = (app.base.clone(), app.tokens.manager.clone());
    let funder = arrears::ops::tokens::create_token_for(
        &app.state.db,
        arrears::ops::tokens::Role::Funder,
        None,
        Some("bank-a"),
        None,
        app.clock.now(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let problems = tokio::task::spawn_blocking(move || visit(&chromium, &base, &token, &funder))
        .await
        .expect("the browser thread panicked")
        .unwrap_or_else(|error| panic!("the browser visit failed: {error:#}"));
    eprintln!(
        "dashboard_browser: {} pages in {:.1} s; screenshots in {}",
        PAGES.len(),
        started.elapsed().as_secs_f64(),
        screenshots_dir().display()
    );
    assert!(problems.is_empty(), "the browser reported problems:\n{}", problems.join("\n"));
}
