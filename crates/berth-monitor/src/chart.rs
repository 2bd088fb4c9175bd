//! The geometry of a history chart, for an SVG drawn server-side: the
//! average as a line, the minimum–maximum as a band behind it, gaps where
//! nothing was collected, and a few axis labels. No JavaScript.

use crate::Series;
use crate::format::Unit;

/// Most buckets a chart draws.
pub const MAX_POINTS: usize = 600;

/// The drawing area, in SVG user units.
pub const WIDTH: f64 = 600.0;
/// Height of the drawing area.
pub const HEIGHT: f64 = 140.0;
/// Room below the drawing area for the time labels.
const LABELS: f64 = 18.0;

/// A grid line or axis label: where (y for values, x for times) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Position in SVG user units.
    pub pos: f64,
    /// The label.
    pub label: String,
}

/// A chart ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// What it shows, e.g. `CPU`.
    pub title: String,
    /// SVG path data of the average line (`M x,y L x,y …`, one `M` per run
    /// without gaps).
    pub line: String,
    /// SVG path data of the min–max band (one closed shape per run).
    pub band: String,
    /// Buckets drawn.
    pub points: usize,
    /// Horizontal grid lines with their values.
    pub y_ticks: Vec<Tick>,
    /// Time labels along the bottom.
    pub x_ticks: Vec<Tick>,
    /// Where the time labels' baseline is.
    pub label_y: f64,
    /// The newest average, formatted; empty without data.
    pub latest: String,
    /// The largest maximum in the range, formatted.
    pub peak: String,
    /// Whether there is nothing to draw.
    pub empty: bool,
}

impl Chart {
    /// Lays out `series` (at most [`MAX_POINTS`] buckets are drawn; more are
    /// merged pairwise first, which cannot happen with [`crate::Range`]'s
    /// widths but keeps the promise for any caller).
    pub fn new(title: &str, unit: Unit, series: &Series) -> Chart {
        let mut buckets = series.buckets.clone();
        let mut width = series.bucket_secs.max(1);
        while buckets.len() > MAX_POINTS {
            buckets = buckets
                .chunks(2)
                .map(|pair| {
                    let n = pair.len() as f64;
                    berth_store::metrics::Bucket {
                        at: pair[0].at,
                        avg: pair.iter().map(|b| b.avg).sum::<f64>() / n,
                        min: pair.iter().map(|b| b.min).fold(f64::INFINITY, f64::min),
                        max: pair.iter().map(|b| b.max).fold(f64::NEG_INFINITY, f64::max),
                    }
                })
                .collect();
            width *= 2;
        }
        let span = (series.to - series.from).max(1) as f64;
        let top = buckets
            .iter()
            .map(|b| b.max)
            .fold(0.0_f64, f64::max)
            .max(match unit {
                Unit::Ratio => 1.0,
                _ => 0.0,
            });
        let top = nice_ceiling(top);
        let x = |at: i64| ((at - series.from) as f64 / span * WIDTH).clamp(0.0, WIDTH);
        let y = |v: f64| HEIGHT - (v / top * HEIGHT).clamp(0.0, HEIGHT);

        // Runs of buckets without a gap (a missing bucket or two is a gap).
        let mut runs: Vec<Vec<&berth_store::metrics::Bucket>> = Vec::new();
        for b in &buckets {
            match runs.last_mut() {
                Some(run) if b.at - run.last().map_or(b.at, |l| l.at) <= width * 2 => run.push(b),
                _ => runs.push(vec![b]),
            }
        }
        let mut line = String::new();
        let mut band = String::new();
        for run in &runs {
            for (i, b) in run.iter().enumerate() {
                let cmd = if i == 0 { 'M' } else { 'L' };
                line.push_str(&format!("{cmd}{:.1},{:.1} ", x(b.at), y(b.avg)));
            }
            for (i, b) in run.iter().enumerate() {
                let cmd = if i == 0 { 'M' } else { 'L' };
                band.push_str(&format!("{cmd}{:.1},{:.1} ", x(b.at), y(b.max)));
            }
            for b in run.iter().rev() {
                band.push_str(&format!("L{:.1},{:.1} ", x(b.at), y(b.min)));
            }
            band.push_str("Z ");
        }
        let y_ticks = [0.0, 0.5, 1.0]
            .into_iter()
            .map(|f| Tick {
                pos: y(top * f),
                label: unit.show(top * f),
            })
            .collect();
        let x_ticks = (0..=4)
            .map(|i| {
                let at = series.from + (series.to - series.from) * i / 4;
                Tick {
                    pos: x(at),
                    label: time_label(at, series.to - series.from),
                }
            })
            .collect();
        Chart {
            title: title.to_owned(),
            line: line.trim_end().to_owned(),
            band: band.trim_end().to_owned(),
            points: buckets.len(),
            y_ticks,
            x_ticks,
            label_y: HEIGHT + LABELS - 4.0,
            latest: buckets.last().map(|b| unit.show(b.avg)).unwrap_or_default(),
            peak: buckets
                .iter()
                .map(|b| b.max)
                .reduce(f64::max)
                .map(|m| unit.show(m))
                .unwrap_or_default(),
            empty: buckets.is_empty(),
        }
    }

    /// The SVG viewBox.
    pub fn view_box(&self) -> String {
        format!("0 0 {WIDTH} {}", HEIGHT + LABELS)
    }
}

/// A round number at or above `v` (1, 2, 5 × 10^n), so grid labels read well.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// `14:05` for spans up to two days, `Dec 8` beyond (UTC).
fn time_label(at: i64, span: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(at) else {
        return String::new();
    };
    if span <= 2 * 24 * 3600 {
        format!("{:02}:{:02}", t.hour(), t.minute())
    } else {
        format!("{} {}", &t.month().to_string()[..3], t.day())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::metrics::Bucket;

    fn series(buckets: Vec<Bucket>, from: i64, to: i64, width: i64) -> Series {
        Series {
            from,
            to,
            bucket_secs: width,
            buckets,
        }
    }

    #[test]
    fn a_gap_splits_the_line_and_the_band_keeps_min_and_max() {
        let b = |at, avg, min, max| Bucket { at, avg, min, max };
        let s = series(
            vec![
                b(0, 1.0, 0.5, 2.0),
                b(10, 1.0, 0.5, 4.0),
                b(100, 1.0, 1.0, 1.0),
            ],
            0,
            120,
            10,
        );
        let c = Chart::new("CPU", Unit::Cores, &s);
        assert_eq!(c.points, 3);
        assert_eq!(c.line.matches('M').count(), 2, "{}", c.line);
        assert_eq!(c.band.matches('Z').count(), 2, "{}", c.band);
        // The top of the scale is the spike (4) rounded to 5: at x = 10/120 of 600, y = 140 - 4/5 of 140.
        assert!(c.band.contains("L50.0,28.0"), "{}", c.band);
        assert_eq!(c.peak, "4.00 cores");
    }

    #[test]
    fn more_buckets_than_fit_are_merged_keeping_the_extremes() {
        let buckets: Vec<Bucket> = (0..1500)
            .map(|i| Bucket {
                at: i,
                avg: 1.0,
                min: if i == 7 { -3.0 } else { 0.0 },
                max: if i == 1001 { 9.0 } else { 2.0 },
            })
            .collect();
        let c = Chart::new("x", Unit::Plain, &series(buckets, 0, 1500, 1));
        assert!(c.points <= MAX_POINTS, "{}", c.points);
        assert_eq!(c.peak, "9.00");
    }

    #[test]
    fn nothing_recorded_is_an_empty_chart() {
        let c = Chart::new("x", Unit::Bytes, &series(Vec::new(), 0, 3600, 6));
        assert!(c.empty);
        assert!(c.line.is_empty());
    }

    #[test]
    fn scale_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
    }
}
