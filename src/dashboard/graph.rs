//! The knowledge graph as SVG: the reference's Neo4j graph drawn left to right — pipeline components, the
//! signals they raise, the composite signals those are part of, and the incidents those indicate — with what
//! has fired so far marked (a signal seen, a composite activated, an incident reported).
//!
//! Each node is `<g class="gnode" data-id="signal:<name>#<component>" data-label="Signal">`, so the page can
//! open its editor on a click.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::diagram::esc;
use crate::reasoning::graph::{GraphView, NodeView};

const COL_W: i64 = 250;
const NODE_W: i64 = 200;
const NODE_H: i64 = 38;
const ROW_H: i64 = 48;
const TOP: i64 = 40;
const MARGIN: i64 = 16;

/// Column titles, left to right.
const COLUMNS: [&str; 4] = ["Pipeline components", "Signals", "Composite signals", "Incidents"];

struct Placed<'a> {
    id: &'a str,
    label: &'static str,
    title: String,
    note: String,
    fired: bool,
}

fn place<'a>(node: &'a NodeView, reported: &[String]) -> (usize, Placed<'a>) {
    match node {
        NodeView::DataPipeline { id, name, owner } => (
            0,
            Placed {
                id,
                label: "DataPipeline",
                title: name.clone(),
                note: owner.clone().unwrap_or_default(),
                fired: false,
            },
        ),
        NodeView::Signal { id, name, component, threshold, cool_down_sec, last_signal_time, .. } => {
            let note = if *threshold < 0 {
                format!("{component} · simple")
            } else {
                format!("{component} · {threshold} in {cool_down_sec} s")
            };
            (1, Placed { id, label: "Signal", title: name.clone(), note, fired: last_signal_time.is_some() })
        }
        NodeView::CompositeSignal { id, name, activation_threshold, cool_down_sec } => {
            let note = format!("≥ {:.0} % of parts in {cool_down_sec} s", activation_threshold * 100.0);
            (2, Placed { id, label: "CompositeSignal", title: name.clone(), note, fired: false })
        }
        NodeView::Incident { id, name, description } => {
            let fired = reported.iter().any(|r| r == name);
            (
                3,
                Placed {
                    id,
                    label: "Incident",
                    title: name.clone(),
                    note: description.clone().unwrap_or_default(),
                    fired,
                },
            )
        }
    }
}

/// The graph, with `reported` incidents (their names) marked.
pub fn render(view: &GraphView, reported: &[String]) -> String {
    let mut columns: [Vec<Placed<'_>>; 4] = Default::default();
    for node in &view.nodes {
        let (col, placed) = place(node, reported);
        columns[col].push(placed);
    }
    for c in &mut columns {
        c.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(b.id)));
    }
    // A composite counts as activated when one of its INDICATES edges has fired.
    let activated: Vec<&str> =
        view.edges.iter().filter(|e| e.last_activation.is_some()).map(|e| e.from.as_str()).collect();
    let mut pos: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (c, nodes) in columns.iter().enumerate() {
        for (r, n) in nodes.iter().enumerate() {
            pos.insert(n.id, (MARGIN + c as i64 * COL_W, TOP + r as i64 * ROW_H));
        }
    }
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0).max(1) as i64;
    let (width, height) = (MARGIN * 2 + 3 * COL_W + NODE_W, TOP + rows * ROW_H + MARGIN);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"graph\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"system-ui, sans-serif\" font-size=\"12\">"
    );
    for (c, title) in COLUMNS.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"22\" font-weight=\"600\" fill=\"#4a5263\">{title} ({})</text>",
            MARGIN + c as i64 * COL_W,
            columns[c].len()
        );
    }
    for e in &view.edges {
        let (Some(&(fx, fy)), Some(&(tx, ty))) = (pos.get(e.from.as_str()), pos.get(e.to.as_str())) else {
            continue;
        };
        // Draw left to right whatever the edge's direction (a signal is SIGNALLED_BY its component).
        let ((x1, y1), (x2, y2)) = if fx <= tx { ((fx, fy), (tx, ty)) } else { ((tx, ty), (fx, fy)) };
        let (sx, sy, ex, ey) = if x1 == x2 {
            (x1, y1 + NODE_H / 2, x2, y2 + NODE_H / 2)
        } else {
            (x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2)
        };
        let bend = if x1 == x2 { -40 } else { (ex - sx) / 2 };
        let hot = e.last_activation.is_some() || e.activation_time.is_some();
        let _ = write!(
            svg,
            "<path class=\"gedge\" data-type=\"{kind}\" d=\"M {sx} {sy} C {c1} {sy}, {c2} {ey}, {ex} {ey}\" \
             fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{w}\"><title>{kind}: {from} → {to}</title></path>",
            kind = e.kind,
            c1 = sx + bend,
            c2 = ex - bend,
            stroke = if hot { "#e0a526" } else { "#aab0bb" },
            w = if hot { 2 } else { 1 },
            from = esc(&e.from),
            to = esc(&e.to),
        );
    }
    for nodes in &columns {
        for n in nodes {
            let Some(&(x, y)) = pos.get(n.id) else { continue };
            let fired = n.fired || activated.contains(&n.id);
            let colour = match (n.label, fired) {
                ("Incident", true) => "#d64545",
                (_, true) => "#e0a526",
                ("DataPipeline", _) => "#5b7bb4",
                _ => "#9aa1ad",
            };
            let _ = write!(
                svg,
                "<g class=\"gnode\" data-id=\"{id}\" data-label=\"{label}\" data-fired=\"{fired}\" style=\"cursor:pointer\">\
                 <title>{label} {title}{note}</title>\
                 <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"white\" stroke=\"{colour}\" \
                 stroke-width=\"{w}\"/><text x=\"{tx}\" y=\"{ty1}\" font-weight=\"600\">{short}</text>\
                 <text x=\"{tx}\" y=\"{ty2}\" font-size=\"10\" fill=\"#5a6273\">{note_short}</text></g>",
                id = esc(n.id),
                label = n.label,
                title = esc(&n.title),
                note = if n.note.is_empty() { String::new() } else { format!(" — {}", esc(&n.note)) },
                w = if fired { 3 } else { 1 },
                tx = x + 8,
                ty1 = y + 15,
                ty2 = y + 30,
                short = esc(&clip(&n.title, 28)),
                note_short = esc(&clip(&n.note, 36)),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reasoning::graph::{KnowledgeGraph, SignalSpec};

    #[test]
    fn every_node_is_drawn_in_its_column_and_reported_incidents_are_red() {
        let text = include_str!("../../flows/knowledge.yaml");
        let mut g = KnowledgeGraph::from_yaml_str(text, "knowledge.yaml").unwrap();
        let spec = SignalSpec {
            name: "Lag".into(),
            component: "FLINK".into(),
            threshold: Some(3),
            cool_down_sec: Some(60),
        };
        g.create_signal(spec).unwrap();
        let svg = render(&g.view(), &["Data Loading Incident".to_owned()]);
        assert!(svg.contains("data-id=\"component:NIFI\" data-label=\"DataPipeline\""), "{svg}");
        assert!(svg.contains("data-id=\"signal:Lag#FLINK\""));
        assert!(svg.contains("FLINK · 3 in 60 s"));
        assert!(svg.contains(
            "data-id=\"incident:Data Loading Incident\" data-label=\"Incident\" data-fired=\"true\""
        ));
        assert!(svg.contains(">Signals (5)<"));
        let view = g.view();
        assert_eq!(svg.matches("class=\"gedge\"").count(), view.edges.len(), "every edge is drawn");
    }
}
