//! The mined process model (the heuristics miner's dependency graph) as SVG: activities left to right by
//! their distance from the start activities, each edge labelled with its dependency measure and frequency.

use std::fmt::Write as _;

use super::diagram::{esc, longest_paths};
use crate::process_mining::heuristics::DependencyGraph;

const NODE_W: i64 = 170;
const NODE_H: i64 = 40;
const COL_W: i64 = 230;
const ROW_H: i64 = 64;
const MARGIN: i64 = 16;

/// The file the heuristics miner leaves its final model in, under the run's output directory (its default
/// `output`).
pub const MODEL_FILE: &str = "process-model.json";

/// The model as SVG.
pub fn render(g: &DependencyGraph) -> String {
    let edges: Vec<(&str, &str)> = g.edges.iter().map(|e| (e.from.as_str(), e.to.as_str())).collect();
    let cols = longest_paths(g.activities.iter().map(|a| a.name.as_str()), &edges);
    let mut rows: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut pos: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
    for a in &g.activities {
        let c = cols.get(&a.name).copied().unwrap_or(0);
        let r = rows.entry(c).or_insert(0);
        pos.insert(&a.name, (MARGIN + c * COL_W, MARGIN + *r * ROW_H));
        *r += 1;
    }
    let width = MARGIN * 2 + cols.values().max().copied().unwrap_or(0) * COL_W + NODE_W;
    let height = MARGIN * 2 + rows.values().max().copied().unwrap_or(1) * ROW_H;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"model\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"system-ui, sans-serif\" font-size=\"12\">\
         <defs><marker id=\"m-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#7a8190\"/>\
         </marker></defs>"
    );
    for e in &g.edges {
        let (Some(&(fx, fy)), Some(&(tx, ty))) = (pos.get(e.from.as_str()), pos.get(e.to.as_str())) else {
            continue;
        };
        let forward = tx > fx;
        let (x1, y1) = (fx + NODE_W, fy + NODE_H / 2);
        let (x2, y2) = if forward { (tx, ty + NODE_H / 2) } else { (tx + NODE_W / 2, ty + NODE_H) };
        let bend = if forward { ((x2 - x1) / 2).max(30) } else { 60 };
        let _ = write!(
            svg,
            "<g class=\"medge\" data-from=\"{from}\" data-to=\"{to}\"><title>{from} → {to}: dependency {d:.3}, \
             {f} times</title><path d=\"M {x1} {y1} C {c1} {y1}, {c2} {cy2}, {x2} {y2}\" fill=\"none\" \
             stroke=\"#7a8190\" stroke-width=\"{w}\" marker-end=\"url(#m-arrow)\"/><text x=\"{lx}\" y=\"{ly}\" \
             font-size=\"10\" fill=\"#5a6273\" text-anchor=\"middle\">{d:.2} ({f})</text></g>",
            from = esc(&e.from),
            to = esc(&e.to),
            d = e.dependency,
            f = e.frequency,
            c1 = x1 + bend,
            c2 = if forward { x2 - bend } else { x2 },
            cy2 = if forward { y2 } else { y2 + 40 },
            w = if e.dependency >= 0.9 { 2 } else { 1 },
            lx = (x1 + x2) / 2,
            ly = (y1 + y2) / 2 - 4,
        );
    }
    for a in &g.activities {
        let Some(&(x, y)) = pos.get(a.name.as_str()) else { continue };
        let (start, end) = (g.start.contains(&a.name), g.end.contains(&a.name));
        let stroke = if start {
            "#2e9d5b"
        } else if end {
            "#d64545"
        } else {
            "#5b7bb4"
        };
        let _ = write!(
            svg,
            "<g class=\"activity\" data-name=\"{name}\"><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" \
             height=\"{NODE_H}\" rx=\"18\" fill=\"white\" stroke=\"{stroke}\" stroke-width=\"2\"/>\
             <text x=\"{tx}\" y=\"{ty1}\" font-weight=\"600\" text-anchor=\"middle\">{name}</text>\
             <text x=\"{tx}\" y=\"{ty2}\" font-size=\"10\" fill=\"#5a6273\" text-anchor=\"middle\">{f}{role}</text></g>",
            name = esc(&a.name),
            tx = x + NODE_W / 2,
            ty1 = y + 17,
            ty2 = y + 31,
            f = a.frequency,
            role = match (start, end) {
                (true, true) => " · start, end",
                (true, false) => " · start",
                (false, true) => " · end",
                _ => "",
            },
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_mining::heuristics::{Activity, Edge};

    #[test]
    fn activities_follow_their_dependencies() {
        let act = |n: &str| Activity { name: n.into(), frequency: 10 };
        let edge =
            |a: &str, b: &str, d: f64| Edge { from: a.into(), to: b.into(), frequency: 9, dependency: d };
        let g = DependencyGraph {
            activities: vec![act("create"), act("decide"), act("ship")],
            edges: vec![edge("create", "decide", 0.95), edge("decide", "ship", 0.5)],
            start: vec!["create".into()],
            end: vec!["ship".into()],
            ..Default::default()
        };
        let svg = render(&g);
        assert!(svg.contains("data-from=\"create\" data-to=\"decide\""), "{svg}");
        assert!(svg.contains(">0.95 (9)<") && svg.contains(">10 · start<") && svg.contains(">10 · end<"));
        let x = |name: &str| {
            let at = svg.find(&format!("data-name=\"{name}\"><rect x=\"")).unwrap() + name.len() + 22;
            svg[at..].split('"').next().unwrap().parse::<i64>().unwrap()
        };
        assert!(x("create") < x("decide") && x("decide") < x("ship"), "left to right");
    }
}
