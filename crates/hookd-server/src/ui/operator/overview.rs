//! The overview: this node's last hour as small charts drawn here as SVG (deliveries
//! per second, success rate, p99 attempt time, messages accepted and requests
//! received per second, the queue), the endpoints that are failing, and the newest
//! applications and sources.

use askama::Template;
use axum::extract::State;
use chrono::Utc;
use hookd_store::{Application, ApplicationFilter, Source};

use super::{OperatorSession, chrome, newest};
use crate::service::Service;
use crate::service::metric_history::{Reading, p99};
use crate::ui::page::{Chrome, UiResult, render};

/// One chart: a polyline in a 300 × 60 box.
pub struct Chart {
    pub title: &'static str,
    /// The latest value, formatted.
    pub now: String,
    /// The largest value shown, formatted (the top of the box).
    pub top: String,
    pub points: String,
    pub empty: bool,
}

const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 60.0;

/// A chart of `values` (one per reading interval; `None` where there is nothing to
/// show), `format` writing a value.
fn chart(title: &'static str, values: &[Option<f64>], format: impl Fn(f64) -> String) -> Chart {
    let top = values.iter().flatten().copied().fold(0.0_f64, f64::max);
    let scale = if top > 0.0 { top } else { 1.0 };
    let step = if values.len() > 1 {
        WIDTH / (values.len() - 1) as f64
    } else {
        0.0
    };
    let y = |v: f64| HEIGHT - v / scale * (HEIGHT - 2.0) - 1.0;
    let shown: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let points = match shown[..] {
        // One value: a level line across, so it shows.
        [(_, only)] => format!("0.0,{:.1} {WIDTH:.1},{:.1}", y(only), y(only)),
        _ => shown
            .iter()
            .map(|(i, v)| format!("{:.1},{:.1}", *i as f64 * step, y(*v)))
            .collect::<Vec<_>>()
            .join(" "),
    };
    Chart {
        title,
        now: values
            .iter()
            .rev()
            .flatten()
            .next()
            .map_or_else(|| "–".to_owned(), |v| format(*v)),
        top: format(top),
        empty: values.iter().flatten().next().is_none(),
        points,
    }
}

fn per_second(pairs: &[(&Reading, &Reading)], f: impl Fn(&Reading) -> u64) -> Vec<Option<f64>> {
    pairs
        .iter()
        .map(|(a, b)| {
            let secs = (b.at - a.at).num_milliseconds() as f64 / 1000.0;
            (secs > 0.0).then(|| f(b).saturating_sub(f(a)) as f64 / secs)
        })
        .collect()
}

/// The charts of a history (oldest reading first).
pub fn charts(readings: &[Reading]) -> Vec<Chart> {
    let pairs: Vec<(&Reading, &Reading)> = readings.windows(2).map(|w| (&w[0], &w[1])).collect();
    let rate = |v: f64| format!("{v:.1}/s");
    let success: Vec<Option<f64>> = pairs
        .iter()
        .map(|(a, b)| {
            let ok = b.delivered.saturating_sub(a.delivered);
            let all = ok + b.failed.saturating_sub(a.failed);
            (all > 0).then(|| ok as f64 / all as f64 * 100.0)
        })
        .collect();
    let latency: Vec<Option<f64>> = pairs
        .iter()
        .map(|(a, b)| {
            p99(&a.buckets, &b.buckets)
                .filter(|v| v.is_finite())
                .map(|s| s * 1000.0)
        })
        .collect();
    vec![
        chart(
            "Deliveries",
            &per_second(&pairs, |r| r.delivered + r.failed),
            rate,
        ),
        chart("Success rate", &success, |v| format!("{v:.1}%")),
        chart("p99 attempt time", &latency, |v| format!("≤ {v:.0} ms")),
        chart("Messages accepted", &per_second(&pairs, |r| r.accepted), rate),
        chart("Requests received", &per_second(&pairs, |r| r.received), rate),
        chart(
            "Deliveries due",
            &readings
                .iter()
                .skip(1)
                .map(|r| Some(r.due as f64))
                .collect::<Vec<_>>(),
            |v| format!("{v:.0}"),
        ),
    ]
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    charts: Vec<Chart>,
    apps: Vec<Application>,
    more_apps: bool,
    sources: Vec<Source>,
    /// (app id, endpoint id, URL, failing since, disabled)
    failing: Vec<(String, String, String, String, bool)>,
    due: u64,
    later: u64,
}

/// Failing endpoints shown at most.
const FAILING_SHOWN: usize = 20;

pub async fn overview(State(state): State<Service>, s: OperatorSession) -> UiResult {
    state.history.viewed();
    let apps = state
        .store
        .list_applications(s.org(), &newest(10), ApplicationFilter::default())
        .await?;
    let sources = state.store.list_sources(s.org(), &newest(10)).await?;
    let (due, later) = state.store.backlog(Utc::now()).await?;
    let failing = state
        .store
        .failing_endpoints(s.org(), FAILING_SHOWN)
        .await?
        .into_iter()
        .map(|(ep, since)| {
            (
                ep.app_id.to_string(),
                ep.id.to_string(),
                ep.data.url.to_string(),
                crate::ui::views::time(since),
                ep.data.disabled,
            )
        })
        .collect();
    Ok(render(&OverviewPage {
        failing,
        chrome: chrome(&s, "Overview", "overview"),
        charts: charts(&state.history.readings()),
        apps: apps.items,
        more_apps: apps.has_more,
        sources: sources.items,
        due,
        later,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_show_rates_between_readings() {
        let t0 = Utc::now();
        let reading = |s: i64, delivered: u64, failed: u64| Reading {
            at: t0 + chrono::Duration::seconds(s),
            delivered,
            failed,
            ..Reading::default()
        };
        let charts = charts(&[reading(0, 0, 0), reading(10, 90, 10), reading(20, 90, 10)]);
        assert_eq!(charts[0].now, "0.0/s");
        assert_eq!(charts[0].top, "10.0/s");
        assert_eq!(charts[0].points, "0.0,1.0 300.0,59.0");
        assert_eq!(charts[1].now, "90.0%", "the last interval with attempts");
        assert!(charts[2].empty);
        assert!(chart("x", &[], |v| v.to_string()).empty);
        assert_eq!(
            chart("x", &[Some(2.0)], |v| v.to_string()).points,
            "0.0,1.0 300.0,1.0"
        );
    }
}
