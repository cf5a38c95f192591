//! The published results: `loadtest/results/report.md` (a table of the scenarios, the
//! targets checked against them, load shedding and the soak's memory) and
//! `loadtest/results/latency.png` (latency percentile curves, drawn with plotters' bitmap
//! backend), from the JSON reports `pdp-loadtest` wrote. A scenario's role in the checks is
//! its `role` tag: `check-saturation-nocache` (calls/s target), `open-loop` (p99 target),
//! `redis-down` (serving with the shared signal store out of reach),
//! `shed` and `recover` (load shedding), `soak` (memory).

use std::fmt::Write as _;
use std::path::Path;

use crate::ghz::report::Report;

/// Calls per second Check must reach on one server core with the decision cache off.
pub const TARGET_CALLS_PER_SECOND: f64 = 50_000.0;
/// p99 at half the saturation rate, ns.
pub const TARGET_P99_NS: u64 = 1_000_000;

fn role(r: &Report) -> &str {
    r.tags.get("role").map_or("", String::as_str)
}

fn by_role<'a>(reports: &'a [Report], name: &str) -> Option<&'a Report> {
    reports.iter().find(|r| role(r) == name)
}

/// A latency in ns, as `85 µs` or `1.23 ms`.
pub fn latency(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{} µs", (ns + 500) / 1000)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn decisions_per_second(r: &Report) -> f64 {
    let d = r.decision_distribution;
    let secs = r.total as f64 / 1e9;
    if secs > 0.0 {
        (d.allow + d.deny) as f64 / secs
    } else {
        0.0
    }
}

fn errors_cell(r: &Report) -> String {
    let n = r.errors();
    if n == 0 {
        return "0".into();
    }
    let codes: Vec<&str> = r
        .status_code_distribution
        .keys()
        .filter(|c| c.as_str() != "OK")
        .map(String::as_str)
        .collect();
    format!("{} ({})", thousands(n), codes.join(", "))
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

/// The Markdown report. `preamble` is printed first (how and where it was run).
pub fn markdown(reports: &[Report], preamble: &str) -> String {
    let mut s = String::from("# pdp load-test results\n\n");
    s.push_str(preamble.trim_end());
    s.push_str("\n\n");
    s.push_str(
        "| scenario | calls/s | decisions/s | p50 | p90 | p99 | errors | allow / deny | server CPU per call | server CPU busy |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in reports {
        let p = |q| r.percentile(q).map_or("–".to_owned(), latency);
        let d = r.decision_distribution;
        let (cpu, busy) = r.server_cpu.as_ref().map_or(("–".into(), "–".into()), |c| {
            (
                format!("{:.1} µs", c.cpu_per_call_micros),
                format!("{:.0} %", c.utilization * 100.0),
            )
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            r.name.as_deref().unwrap_or("?"),
            thousands(r.rps.round() as u64),
            thousands(decisions_per_second(r).round() as u64),
            p(50),
            p(90),
            p(99),
            errors_cell(r),
            thousands(d.allow),
            thousands(d.deny),
            cpu,
            busy
        );
    }
    s.push_str(
        "\nLatencies are of successful calls, measured by the generator from the send (closed \
         loop) or from the scheduled send time (open loop). Server CPU is the `pdp` process's \
         user + system time over the measured phase (`/proc/PID/stat`), divided by the calls; \
         busy is that time over the phase's wall time (100 % = the one core it is pinned to).\n",
    );

    s.push_str("\n## Targets\n\n");
    let saturation = by_role(reports, "check-saturation-nocache");
    match saturation {
        Some(r) => {
            let _ = writeln!(
                s,
                "- At least {} Check calls/s on one server core with the decision cache off: {} calls/s, server CPU {:.0} % busy: {}.",
                thousands(TARGET_CALLS_PER_SECOND as u64),
                thousands(r.rps.round() as u64),
                r.server_cpu.map_or(0.0, |c| c.utilization * 100.0),
                pass(r.rps >= TARGET_CALLS_PER_SECOND)
            );
            if let Some(c) = r.server_cpu {
                if c.cpu_per_call_micros > 0.0 {
                    let _ = writeln!(
                        s,
                        "  At {:.1} µs of server CPU per call, one fully busy core serves about {} calls/s.",
                        c.cpu_per_call_micros,
                        thousands((1e6 / c.cpu_per_call_micros).round() as u64)
                    );
                }
            }
        }
        None => s.push_str("- Saturation with the cache off: not run.\n"),
    }
    match by_role(reports, "open-loop") {
        Some(r) => {
            let p99 = r.percentile(99).unwrap_or(u64::MAX);
            let _ = write!(
                s,
                "- p99 at most {} at half the saturation rate (open loop, {} requests/s scheduled): p99 {}: {}.",
                latency(TARGET_P99_NS),
                thousands(r.options.rps),
                latency(p99),
                pass(p99 <= TARGET_P99_NS)
            );
            if let Some(lag) = r.open_loop_lag {
                let _ = write!(
                    s,
                    " The generator sent requests a median {} and a p99 {} after their scheduled times (max {}); that lag is included in the latencies.",
                    latency(lag.p50),
                    latency(lag.p99),
                    latency(lag.max)
                );
            }
            if let Some(sent) = r
                .sent_latency_distribution
                .iter()
                .find(|l| l.percentage == 99)
            {
                let _ = write!(
                    s,
                    " Measured from the actual send instead (as ghz measures), p99 {}.",
                    latency(sent.latency)
                );
            }
            if let Some(floor) = by_role(reports, "open-loop-floor") {
                let _ = write!(
                    s,
                    " The empty handler (`empty-server`, the transport floor) under the same open loop: p99 {}",
                    floor.percentile(99).map_or("–".into(), latency)
                );
                if let Some(lag) = floor.open_loop_lag {
                    let _ = write!(
                        s,
                        " (send lag p99 {}, max {})",
                        latency(lag.p99),
                        latency(lag.max)
                    );
                }
                s.push('.');
            }
            s.push('\n');
        }
        None => s.push_str("- p99 at half the saturation rate: not run.\n"),
    }
    let failing: Vec<&Report> = reports
        .iter()
        .filter(|r| role(r) != "shed" && r.errors() > 0)
        .collect();
    let _ = writeln!(
        s,
        "- No errors (every scenario but the deliberate overload): {}{}.",
        pass(failing.is_empty()),
        if failing.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                failing
                    .iter()
                    .map(|r| format!("{}: {}", r.name.as_deref().unwrap_or("?"), errors_cell(r)))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    );

    if let (Some(shed), recover) = (by_role(reports, "shed"), by_role(reports, "recover")) {
        s.push_str("\n## Load shedding\n\n");
        let exhausted = shed
            .status_code_distribution
            .get("ResourceExhausted")
            .copied()
            .unwrap_or(0);
        let _ = writeln!(
            s,
            "- Overload ({} calls in flight on one connection against `--max-concurrency {}`): {} calls, {} refused with `RESOURCE_EXHAUSTED` ({:.1} %), {} answered; p99 of the answered calls {}.",
            shed.options.concurrency,
            shed.tags.get("max-concurrency").map_or("?", String::as_str),
            thousands(shed.count),
            thousands(exhausted),
            exhausted as f64 * 100.0 / shed.count.max(1) as f64,
            thousands(shed.status_code_distribution.get("OK").copied().unwrap_or(0)),
            shed.percentile(99).map_or("–".into(), latency)
        );
        let other: u64 = shed
            .status_code_distribution
            .iter()
            .filter(|(c, _)| c.as_str() != "OK" && c.as_str() != "ResourceExhausted")
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(
            s,
            "- Other errors during the overload: {}.",
            thousands(other)
        );
        if let Some(r) = recover {
            let _ = writeln!(
                s,
                "- Right after, on the same server, within the limit ({} in flight): {} calls, {} errors, p99 {}: {}.",
                r.options.concurrency,
                thousands(r.count),
                thousands(r.errors()),
                r.percentile(99).map_or("–".into(), latency),
                if r.errors() == 0 { "recovered" } else { "**not recovered**" }
            );
        }
    }

    if let Some(r) = by_role(reports, "redis-down") {
        s.push_str("\n## Unreachable Redis\n\n");
        let rss = &r.server_rss;
        let memory = match (rss.first(), rss.last()) {
            (Some(first), Some(last)) => format!(
                "; server RSS {:.1} MiB at the start, {:.1} MiB at the end, at most {:.1} MiB",
                first.rss_kib as f64 / 1024.0,
                last.rss_kib as f64 / 1024.0,
                rss.iter().map(|x| x.rss_kib).max().unwrap_or(0) as f64 / 1024.0
            ),
            _ => String::new(),
        };
        let d = &r.decision_distribution;
        let _ = writeln!(
            s,
            "- {} (`--signals` pointing at a port where nothing listens), for {:.0} s: {} calls/s, {} calls, errors: {}, {} allowed / {} denied, p99 {}{}: {}.",
            r.name.as_deref().unwrap_or("?"),
            r.total as f64 / 1e9,
            thousands(r.rps.round() as u64),
            thousands(r.count),
            errors_cell(r),
            thousands(d.allow),
            thousands(d.deny),
            r.percentile(99).map_or("–".into(), latency),
            memory,
            if r.errors() == 0 {
                "served throughout"
            } else {
                "**errors**"
            }
        );
    }

    if let Some(soak) = by_role(reports, "soak") {
        s.push_str("\n## Soak\n\n");
        let rss = &soak.server_rss;
        if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
            let max = rss.iter().map(|r| r.rss_kib).max().unwrap_or(0);
            let min = rss.iter().map(|r| r.rss_kib).min().unwrap_or(0);
            // Growth over the second half: a leak keeps growing once caches are warm.
            let half = rss
                .iter()
                .find(|r| r.elapsed_seconds >= last.elapsed_seconds / 2.0)
                .unwrap_or(first);
            let _ = writeln!(
                s,
                "{} for {:.0} s: {} calls, {} errors, p99 {}. Server RSS (`VmRSS`, sampled every {:.0} s): {:.1} MiB at the start, {:.1} MiB at the end, between {:.1} and {:.1} MiB throughout; {:+.1} MiB over the second half.\n",
                soak.name.as_deref().unwrap_or("?"),
                soak.total as f64 / 1e9,
                thousands(soak.count),
                thousands(soak.errors()),
                soak.percentile(99).map_or("–".into(), latency),
                rss.get(1).map_or(0.0, |r| r.elapsed_seconds - first.elapsed_seconds),
                first.rss_kib as f64 / 1024.0,
                last.rss_kib as f64 / 1024.0,
                min as f64 / 1024.0,
                max as f64 / 1024.0,
                (last.rss_kib as f64 - half.rss_kib as f64) / 1024.0
            );
            s.push_str("| t (s) | RSS (MiB) |\n|---:|---:|\n");
            for r in rss {
                let _ = writeln!(
                    s,
                    "| {:.0} | {:.1} |",
                    r.elapsed_seconds,
                    r.rss_kib as f64 / 1024.0
                );
            }
        }
    }
    s.push_str(
        "\n## Latency percentiles\n\n![latency percentiles of each scenario](latency.png)\n",
    );
    s
}

/// Loads a TrueType font for the plot's text: `PDP_PLOT_FONT`, else DejaVu Sans or Liberation
/// Sans where Debian puts them.
fn font() -> Result<&'static [u8], String> {
    let candidates = std::env::var("PDP_PLOT_FONT").into_iter().chain(
        [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
        ]
        .map(String::from),
    );
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(Box::leak(bytes.into_boxed_slice()));
        }
    }
    Err("no font for the plot: install fonts-dejavu-core or set PDP_PLOT_FONT".into())
}

/// `-log10(1 - p)`: 90 % → 1, 99 % → 2, 99.9 % → 3.
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).max(1e-6).log10()
}

/// Draws each report's latency percentiles (`latencyPercentiles`) as a curve: x in "nines"
/// (50 %, 90 %, 99 %, 99.9 %, ...), y in microseconds on a log scale; writes a PNG.
pub fn plot(reports: &[Report], path: &Path) -> Result<(), String> {
    use plotters::prelude::*;

    const W: u32 = 1500;
    const H: u32 = 650;
    const LEGEND_W: u32 = 430;
    plotters::style::register_font("sans-serif", FontStyle::Normal, font()?)
        .map_err(|_| "the plot's font cannot be read".to_owned())?;
    let curves: Vec<(String, Vec<(f64, f64)>)> = reports
        .iter()
        .filter(|r| !r.latency_percentiles.is_empty())
        .map(|r| {
            let points = r
                .latency_percentiles
                .iter()
                .filter(|p| p.percentile >= 50.0 && p.percentile < 100.0)
                .map(|p| (nines(p.percentile), (p.latency as f64 / 1000.0).max(1.0)))
                .collect();
            (r.name.clone().unwrap_or_default(), points)
        })
        .collect();
    let ys = curves.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let y_max = ys.clone().fold(10.0, f64::max) * 1.5;
    let y_min = ys.fold(f64::MAX, f64::min).min(y_max / 10.0) / 1.5;
    let x_max = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(x, _)| x))
        .fold(3.0, f64::max);

    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(W - LEGEND_W);
        let mut chart = ChartBuilder::on(&left)
            .caption(
                "pdp: latency percentiles by scenario (server on 1 core)",
                ("sans-serif", 24),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(nines(50.0)..x_max + 0.1, (y_min..y_max).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (µs, log scale)")
            .x_labels(8)
            .x_label_formatter(&|x| {
                let p = 100.0 * (1.0 - 10f64.powf(-x));
                if p < 99.0 {
                    format!("{p:.0}%")
                } else {
                    let digits = format!("{p:.3}");
                    format!("{}%", digits.trim_end_matches('0').trim_end_matches('.'))
                }
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (_, points)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
                .map_err(|e| e.to_string())?;
        }
        // The legend, beside the chart so it hides no curve.
        for (i, (name, _)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let y = 80 + 34 * i32::try_from(i).unwrap_or(0);
            right
                .draw(&PathElement::new(
                    vec![(10, y), (40, y)],
                    color.stroke_width(4),
                ))
                .map_err(|e| e.to_string())?;
            right
                .draw(&Text::new(
                    name.clone(),
                    (48, y - 9),
                    ("sans-serif", 15).into_font(),
                ))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), W, H);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&buf))
        .map_err(|e| format!("`{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(latency(85_400), "85 µs");
        assert_eq!(latency(1_234_000), "1.23 ms");
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
    }
}
