//! The run log (`metrics.jsonl`, one JSON object per logged step or evaluation) and the
//! HTML report drawn from it: loss and learning-rate curves, dev metric over steps, the
//! notes' grouped bar chart of P/R/F1 by sentence length, the per-class table and the
//! confusion matrix. Plain SVG, no JavaScript, so the file opens anywhere.

use super::evaluation::{Evaluation, StepStats};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogRecord {
    /// Optimiser steps done.
    pub step: u64,
    /// Epoch (steps only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub epoch: Option<usize>,
    /// Training loss of the step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss: Option<f64>,
    /// Learning rate of the step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lr: Option<f64>,
    /// Gradient norm before clipping.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grad_norm: Option<f64>,
    /// Training throughput.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub examples_per_s: Option<f64>,
    /// Fraction of the wall time since the last step line that the trainer spent waiting
    /// for its batches (building them, or for the producer threads).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_wait: Option<f64>,
    /// An evaluation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub evaluation: Option<Evaluation>,
}

impl LogRecord {
    /// A training-step line.
    pub fn step(s: &StepStats, epoch: usize, examples_per_s: f64, data_wait: f64) -> Self {
        LogRecord {
            step: s.step,
            epoch: Some(epoch),
            loss: Some(s.loss),
            lr: Some(s.lr),
            grad_norm: Some(s.grad_norm),
            examples_per_s: Some(examples_per_s),
            data_wait: Some(data_wait),
            evaluation: None,
        }
    }

    /// An evaluation line.
    pub fn eval(e: &Evaluation) -> Self {
        LogRecord {
            step: e.step,
            epoch: None,
            loss: None,
            lr: None,
            grad_norm: None,
            examples_per_s: None,
            data_wait: None,
            evaluation: Some(e.clone()),
        }
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("metrics.jsonl")
}

/// Starts an empty log (a new run).
pub fn reset_log(dir: &Path) -> Result<()> {
    crate::util::write_atomic(&log_path(dir), b"")
}

/// Appends one record (a whole line per write).
pub fn append_log(dir: &Path, rec: &LogRecord) -> Result<()> {
    let p = log_path(dir);
    let mut line = serde_json::to_string(rec).map_err(|e| Error::Invalid(e.to_string()))?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    f.write_all(line.as_bytes()).map_err(|e| Error::io(&p, e))
}

/// Reads the log of a resumed run, dropping what came after the checkpoint's step (that
/// work is redone), and rewrites the file to match.
pub fn read_log(dir: &Path, up_to_step: u64) -> Result<Vec<LogRecord>> {
    let p = log_path(dir);
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: LogRecord = serde_json::from_str(line).map_err(|e| Error::Input {
            path: p.clone(),
            line: i + 1,
            msg: e.to_string(),
        })?;
        if rec.step <= up_to_step {
            out.push(rec);
        }
    }
    let mut s = String::new();
    for r in &out {
        s.push_str(&serde_json::to_string(r).map_err(|e| Error::Invalid(e.to_string()))?);
        s.push('\n');
    }
    crate::util::write_atomic(&p, s.as_bytes())?;
    Ok(out)
}

/// Writes `report.html` from the log; returns its path. `about` (the run's summary) heads it.
pub fn write_report(dir: &Path, log: &[LogRecord], about: &str) -> Result<PathBuf> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><meta charset=utf-8><title>bert4rs run report</title>\
         <style>body{{font-family:sans-serif;max-width:980px;margin:2em auto}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         svg{{background:#fafafa;margin:6px 0}}</style>\
         <h1>bert4rs run report</h1><p>{}</p><p>{}</p>",
        escape(&dir.display().to_string()),
        escape(about).replace('\n', "<br>"),
    );
    let steps: Vec<&LogRecord> = log.iter().filter(|r| r.loss.is_some()).collect();
    let series = |f: fn(&LogRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter_map(|r| f(r).map(|v| (r.step as f64, v)))
            .collect()
    };
    let evals: Vec<&Evaluation> = log.iter().filter_map(|r| r.evaluation.as_ref()).collect();
    let dev = |f: fn(&Evaluation) -> Option<f64>| -> Vec<(f64, f64)> {
        evals
            .iter()
            .filter(|e| e.split == "dev")
            .filter_map(|e| f(e).map(|v| (e.step as f64, v)))
            .collect()
    };
    let epochs = epoch_starts(&steps);
    h.push_str("<h2>Training</h2>");
    let losses = [
        Series::new("training loss", series(|r| r.loss), "#c33"),
        Series::new("dev loss", dev(|e| Some(e.loss)), "#36c"),
    ];
    h.push_str(&line_chart("loss", &losses, &epochs));
    let lr = [Series::new("learning rate", series(|r| r.lr), "#36c")];
    h.push_str(&line_chart("learning rate", &lr, &epochs));
    if let Some((name, _)) = evals
        .iter()
        .find(|e| e.split == "dev")
        .and_then(|e| e.headline())
    {
        let curve = [Series::new(
            name,
            dev(|e| e.headline().map(|h| h.1)),
            "#393",
        )];
        h.push_str(&line_chart(&format!("dev {name}"), &curve, &epochs));
    }
    for split in ["test", "dev"] {
        if let Some(e) = evals.iter().rev().find(|e| e.split == split) {
            h.push_str(&eval_section(e));
            break;
        }
    }
    let p = dir.join("report.html");
    crate::util::write_atomic(&p, h.as_bytes())?;
    Ok(p)
}

/// The first logged step of each epoch after the first (where the chart draws a mark).
fn epoch_starts(steps: &[&LogRecord]) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    let mut last = steps.first().and_then(|r| r.epoch);
    for r in steps {
        if r.epoch != last {
            if let Some(e) = r.epoch {
                out.push((e, r.step as f64));
            }
            last = r.epoch;
        }
    }
    out
}

fn eval_section(e: &Evaluation) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<h2>{} set (step {}, {} examples, loss {:.4})</h2>",
        e.split, e.step, e.examples, e.loss
    );
    if let Some(c) = &e.classification {
        let _ = write!(
            h,
            "<p>accuracy {:.4} · macro P/R/F1 {:.4} / {:.4} / {:.4} · micro F1 {:.4}</p>\
             <table><tr><th>label<th>precision<th>recall<th>F1<th>support",
            c.accuracy, c.macro_precision, c.macro_recall, c.macro_f1, c.micro_f1
        );
        for r in &c.per_class {
            let _ = write!(
                h,
                "<tr><td>{}<td>{:.4}<td>{:.4}<td>{:.4}<td>{}",
                escape(&r.label),
                r.precision,
                r.recall,
                r.f1,
                r.support
            );
        }
        h.push_str("</table>");
        if !c.confusion.is_empty() {
            h.push_str("<h3>Confusion matrix (rows gold, columns predicted)</h3><table><tr><th>");
            for r in &c.per_class {
                let _ = write!(h, "<th>{}", escape(&r.label));
            }
            for (r, row) in c.per_class.iter().zip(&c.confusion) {
                let _ = write!(h, "<tr><th>{}", escape(&r.label));
                for v in row {
                    let _ = write!(h, "<td>{v}");
                }
            }
            h.push_str("</table>");
        }
    }
    if let Some(r) = &e.regression {
        let _ = write!(
            h,
            "<p>MSE {:.4} · Pearson {:.4} · Spearman {:.4}</p>",
            r.mse, r.pearson, r.spearman
        );
    }
    if !e.by_length.is_empty() {
        h.push_str("<h3>Macro P / R / F1 by text length (characters)</h3>");
        h.push_str(&grouped_bars(e));
    }
    h
}

const W: f64 = 900.0;
const H: f64 = 220.0;
const PAD: f64 = 45.0;

/// One line of a chart.
struct Series<'a> {
    name: &'a str,
    points: Vec<(f64, f64)>,
    color: &'a str,
}

impl<'a> Series<'a> {
    fn new(name: &'a str, points: Vec<(f64, f64)>, color: &'a str) -> Self {
        Series {
            name,
            points,
            color,
        }
    }
}

/// A line chart of `series` over steps, with five ticks on each axis, a legend, and a
/// dashed mark where each epoch starts.
fn line_chart(title: &str, series: &[Series], epochs: &[(usize, f64)]) -> String {
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    if all.is_empty() {
        return String::new();
    }
    let (x0, x1) = min_max(all.iter().map(|p| p.0));
    let (y0, y1) = min_max(all.iter().map(|p| p.1));
    let sx = |x: f64| PAD + (x - x0) / (x1 - x0).max(1e-12) * (W - 2.0 * PAD);
    let sy = |y: f64| H - PAD - (y - y0) / (y1 - y0).max(1e-12) * (H - 2.0 * PAD);
    let mut s = format!(
        "<svg width={W} height={H}><text x={PAD} y=16 font-size=14>{}</text>",
        escape(title)
    );
    for i in 0..5 {
        let f = i as f64 / 4.0;
        let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
        let _ = write!(
            s,
            "<line x1={PAD} x2={:.0} y1={:.1} y2={:.1} stroke='#e4e4e4'/>\
             <text x=2 y={:.1} font-size=10>{}</text>\
             <text x={:.1} y={:.0} font-size=10 text-anchor=middle>{:.0}</text>",
            W - PAD,
            sy(y),
            sy(y),
            sy(y) + 3.0,
            short(y),
            sx(x),
            H - PAD + 14.0,
            x
        );
    }
    for (epoch, step) in epochs {
        let _ = write!(
            s,
            "<line x1={x:.1} x2={x:.1} y1={PAD} y2={:.0} stroke='#999' stroke-dasharray='3 3'/>\
             <text x={:.1} y={:.0} font-size=10>epoch {}</text>",
            H - PAD,
            sx(*step) + 2.0,
            PAD - 4.0,
            epoch + 1,
            x = sx(*step)
        );
    }
    for (i, line) in series.iter().filter(|l| !l.points.is_empty()).enumerate() {
        let path: Vec<String> = line
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=none stroke='{c}' stroke-width=1.5 points='{}'/>\
             <text x={:.0} y=16 font-size=12 fill='{c}'>■ {}</text>",
            path.join(" "),
            W - PAD - 260.0 + 130.0 * i as f64,
            escape(line.name),
            c = line.color
        );
    }
    s.push_str(&format!(
        "<text x={:.0} y={:.0} font-size=10>step</text></svg>",
        W / 2.0,
        H - 6.0
    ));
    s
}

fn grouped_bars(e: &Evaluation) -> String {
    let buckets = &e.by_length;
    let slot = (W - 2.0 * PAD) / buckets.len() as f64;
    let bar = slot / 4.0;
    let colors = ["#36c", "#c93", "#393"];
    let mut s = format!("<svg width={W} height={H}>");
    // y axis: 0, 0.5, 1 with light grid lines.
    for v in [0.0, 0.5, 1.0] {
        let y = H - PAD - v * (H - 2.0 * PAD);
        let _ = write!(
            s,
            "<line x1={PAD} x2={:.0} y1={y:.1} y2={y:.1} stroke='#ddd'/><text x=12 y={:.1} font-size=11>{v:.1}</text>",
            W - PAD,
            y + 4.0
        );
    }
    for (i, b) in buckets.iter().enumerate() {
        for (j, v) in [b.precision, b.recall, b.f1].iter().enumerate() {
            let x = PAD + i as f64 * slot + (j as f64 + 0.5) * bar;
            let hgt = v * (H - 2.0 * PAD);
            let _ = write!(
                s,
                "<rect x={x:.1} y={:.1} width={:.1} height={hgt:.1} fill='{}'><title>{:.3}</title></rect>",
                H - PAD - hgt,
                bar * 0.9,
                colors[j],
                v
            );
        }
        let _ = write!(
            s,
            "<text x={:.1} y={:.0} font-size=11>{}-{} (n={})</text>",
            PAD + i as f64 * slot + 4.0,
            H - PAD + 16.0,
            b.from,
            b.to,
            b.count
        );
    }
    let _ = write!(
        s,
        "<text x={PAD} y=16 font-size=12><tspan fill='#36c'>■ precision</tspan> <tspan fill='#c93'>■ recall</tspan> <tspan fill='#393'>■ F1</tspan></text></svg>"
    );
    s
}

fn min_max(it: impl Iterator<Item = f64>) -> (f64, f64) {
    it.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    })
}

fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e4) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
