//! The equity curve of a backtest as an SVG picture (no dependencies, no scripts).

use std::fmt::Write;

/// Draws `points` (time ms, equity) as a line chart `width` × `height` pixels, with the start and
/// end equity, the extremes and the time span written on it.
pub fn equity_curve(points: &[(i64, f64)], title: &str, width: u32, height: u32) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 40.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"##
    );
    let _ = write!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{left}" y="22" font-size="14">{}</text>"##,
        escape(title)
    );
    let finite: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    if finite.len() < 2 {
        let _ = write!(
            svg,
            r##"<text x="{left}" y="{}">not enough points</text></svg>"##,
            h / 2.0
        );
        return svg;
    }
    let (t0, t1) = (finite[0].0, finite[finite.len() - 1].0);
    let lo = finite.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = finite.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span_v = if hi > lo { hi - lo } else { 1.0 };
    let span_t = (t1 - t0).max(1) as f64;
    let x = |t: i64| left + (t - t0) as f64 / span_t * (w - left - right);
    let y = |v: f64| top + (hi - v) / span_v * (h - top - bottom);
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#888"/><line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#888"/>"##,
        h - bottom,
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="end">{hi:.2}</text><text x="{}" y="{}" text-anchor="end">{lo:.2}</text>"##,
        left - 6.0,
        top + 4.0,
        left - 6.0,
        h - bottom
    );
    let hours = span_t / 3_600_000.0;
    let _ = write!(
        svg,
        r##"<text x="{left}" y="{}">start</text><text x="{}" y="{}" text-anchor="end">+{hours:.1} h</text>"##,
        h - bottom + 16.0,
        w - right,
        h - bottom + 16.0
    );
    svg.push_str(r##"<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points=""##);
    for (t, v) in &finite {
        let _ = write!(svg, "{:.1},{:.1} ", x(*t), y(*v));
    }
    svg.push_str(r##""/></svg>"##);
    svg.push('\n');
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_line_and_escapes_the_title() {
        let svg = equity_curve(
            &[(0, 100.0), (3_600_000, 110.0), (7_200_000, 90.0)],
            "a<b",
            400,
            200,
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("110.00") && svg.contains("90.00"));
        assert!(equity_curve(&[], "t", 10, 10).contains("not enough points"));
    }
}
