//! The pipeline diagram as SVG: one lane per namespace, laid out like the reference pipeline (the IoT path,
//! the order services, the bus and the process miner, monitoring), components placed left to right by
//! their distance from the sources along the links, each coloured by health, each link labelled with its
//! delivery rate and its drops.
//!
//! Written by hand rather than with a graph-layout crate: the layout *is* the product here (lanes that
//! match the reference's architecture figures), and it is a few dozen lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::view::{ComponentView, LinkView, StateView};

const NODE_W: i64 = 168;
const NODE_H: i64 = 46;
const COL_W: i64 = 228;
const ROW_H: i64 = 62;
const LANE_HEAD: i64 = 26;
const MARGIN: i64 = 16;

/// Lanes in the order they are drawn, with their titles; other namespaces follow by name.
const LANES: &[(&str, &str)] = &[
    ("iot", "IoT path"),
    ("orders", "Order services"),
    ("kafka", "Bus and process mining"),
    ("monitoring", "Monitoring and incidents"),
];

/// Escapes text for SVG content and attributes (the order pages' HTML escaping: the same five characters).
pub use crate::orders::order_api::pages::escape as esc;

/// The colour of a health.
pub fn colour(health: &str) -> &'static str {
    match health {
        "ok" => "#2e9d5b",
        "degraded" => "#e0a526",
        _ => "#d64545",
    }
}

/// Longest path to every node from a node nothing leads to, along `edges` (pairs of names); a cycle stops
/// growing after as many rounds as there are nodes. The columns of a left-to-right layout.
pub fn longest_paths<'a>(
    nodes: impl IntoIterator<Item = &'a str>,
    edges: &[(&'a str, &'a str)],
) -> BTreeMap<String, i64> {
    let mut col: BTreeMap<String, i64> = nodes.into_iter().map(|n| (n.to_owned(), 0)).collect();
    let n = col.len() as i64;
    for _ in 0..n {
        let mut changed = false;
        for (from, to) in edges {
            let (Some(&f), Some(&t)) = (col.get(*from), col.get(*to)) else { continue };
            if t < f + 1 && f + 1 < n {
                col.insert((*to).to_owned(), f + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    col
}

/// Column of every component: the longest path to it along the links inside its lane. (Links between lanes
/// do not push columns: the bus and the monitoring would otherwise stretch every lane to the width of the
/// whole graph.)
fn columns(components: &[ComponentView], links: &[LinkView]) -> BTreeMap<String, i64> {
    let lane: BTreeMap<&str, &str> = components.iter().map(|c| (c.name.as_str(), c.lane.as_str())).collect();
    let inside: Vec<(&str, &str)> = links
        .iter()
        .filter(|l| lane.get(l.from.as_str()).is_some_and(|f| lane.get(l.to.as_str()) == Some(f)))
        .map(|l| (l.from.as_str(), l.to.as_str()))
        .collect();
    longest_paths(components.iter().map(|c| c.name.as_str()), &inside)
}

/// The diagram of `state`.
pub fn render(state: &StateView) -> String {
    let col = columns(&state.components, &state.links);
    let mut lanes: Vec<(String, String)> =
        LANES.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
    for c in &state.components {
        if !lanes.iter().any(|(n, _)| *n == c.lane) {
            lanes.push((c.lane.clone(), if c.lane.is_empty() { "Other".into() } else { c.lane.clone() }));
        }
    }
    lanes.retain(|(n, _)| state.components.iter().any(|c| c.lane == *n));
    // Position of each component: (x, y) of its box.
    let mut pos: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut lane_boxes = Vec::new();
    let mut y = MARGIN;
    let min_col = |lane: &str| {
        state.components.iter().filter(|c| c.lane == lane).filter_map(|c| col.get(&c.name)).min().copied()
    };
    let mut width = 0;
    for (lane, title) in &lanes {
        let shift = min_col(lane).unwrap_or(0);
        let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
        for c in state.components.iter().filter(|c| c.lane == *lane) {
            let column = col.get(&c.name).copied().unwrap_or(0) - shift;
            let row = rows.entry(column).or_insert(0);
            let x = MARGIN + 8 + column * COL_W;
            pos.insert(&c.name, (x, y + LANE_HEAD + *row * ROW_H));
            width = width.max(x + NODE_W + MARGIN + 8);
            *row += 1;
        }
        let height = LANE_HEAD + rows.values().max().copied().unwrap_or(1) * ROW_H;
        lane_boxes.push((title.clone(), y, height));
        y += height + MARGIN;
    }
    let height = y;
    let width = width.max(640);
    let lanes_of: BTreeMap<&str, &str> =
        state.components.iter().map(|c| (c.name.as_str(), c.lane.as_str())).collect();
    let lane_of = |name: &str| lanes_of.get(name).copied();
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"pipeline\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"system-ui, sans-serif\" font-size=\"12\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#7a8190\"/>\
         </marker></defs>"
    );
    for (title, y, h) in &lane_boxes {
        let _ = write!(
            svg,
            "<g class=\"lane\"><rect x=\"{MARGIN}\" y=\"{y}\" width=\"{}\" height=\"{h}\" rx=\"8\" fill=\"#f4f6fa\" \
             stroke=\"#dde2ea\"/><text x=\"{}\" y=\"{}\" font-weight=\"600\" fill=\"#4a5263\">{}</text></g>",
            width - 2 * MARGIN,
            MARGIN + 10,
            y + 17,
            esc(title)
        );
    }
    for l in &state.links {
        let (Some(&(fx, fy)), Some(&(tx, ty))) = (pos.get(l.from.as_str()), pos.get(l.to.as_str())) else {
            continue;
        };
        let (x1, y1) = (fx + NODE_W, fy + NODE_H / 2);
        let (x2, y2) = if tx > fx {
            (tx, ty + NODE_H / 2)
        } else {
            (tx + NODE_W / 2, ty + if ty > fy { 0 } else { NODE_H })
        };
        let bend = ((x2 - x1).abs() / 2).max(40);
        let stroke = if l.faulty {
            "#e0a526"
        } else if l.dropped > 0 {
            "#d64545"
        } else {
            "#9aa1ad"
        };
        let dash = if l.faulty { " stroke-dasharray=\"6 4\"" } else { "" };
        // Links between lanes (mostly to and from the bus) recede unless something is wrong on them.
        let quiet = lane_of(&l.from) != lane_of(&l.to) && !l.faulty && l.dropped == 0;
        let mut label = format!("{:.1}/s", l.rate);
        if l.dropped > 0 {
            let _ = write!(label, " ✕{}", l.dropped);
        }
        if quiet {
            label.clear();
        }
        let opacity = if quiet { " opacity=\"0.3\"" } else { "" };
        let _ = write!(
            svg,
            "<g class=\"link\" data-name=\"{name}\"{opacity}><title>{name}: {rate:.2} msg/s, {d} delivered, {x} dropped{f}</title>\
             <path d=\"M {x1} {y1} C {c1} {y1}, {c2} {y2}, {x2} {y2}\" fill=\"none\" stroke=\"{stroke}\" \
             stroke-width=\"{w}\"{dash} marker-end=\"url(#arrow)\"/>\
             <text x=\"{lx}\" y=\"{ly}\" font-size=\"10\" fill=\"#5a6273\" text-anchor=\"middle\">{label}</text></g>",
            name = esc(&l.name),
            rate = l.rate,
            d = l.delivered,
            x = l.dropped,
            f = if l.faulty { " (fault active)" } else { "" },
            c1 = x1 + bend,
            c2 = x2 - if tx > fx { bend } else { 0 },
            w = if l.rate > 0.0 { 2 } else { 1 },
            lx = (x1 + x2) / 2,
            ly = (y1 + y2) / 2 - 4,
            label = esc(&label),
        );
    }
    for c in &state.components {
        let Some(&(x, y)) = pos.get(c.name.as_str()) else { continue };
        let fill = colour(c.health);
        let note = if c.paused { "paused".to_owned() } else { c.state.clone() };
        let restarts = if c.restarts > 0 { format!(" · {} restarts", c.restarts) } else { String::new() };
        let _ = write!(
            svg,
            "<g class=\"node\" data-name=\"{name}\" data-health=\"{health}\" data-state=\"{state}\" \
             style=\"cursor:pointer\"><title>{name} ({kind}): {state}{detail}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"white\" \
             stroke=\"{fill}\" stroke-width=\"2\"/><rect x=\"{x}\" y=\"{y}\" width=\"8\" height=\"{NODE_H}\" \
             rx=\"3\" fill=\"{fill}\"/><text x=\"{tx}\" y=\"{ty1}\" font-weight=\"600\">{name}</text>\
             <text x=\"{tx}\" y=\"{ty2}\" font-size=\"10\" fill=\"#5a6273\">{kind} · {note}{restarts}</text></g>",
            name = esc(&c.name),
            health = c.health,
            state = esc(&c.state),
            kind = esc(&c.kind),
            detail = if c.detail.is_empty() { String::new() } else { format!(" — {}", esc(&c.detail)) },
            tx = x + 16,
            ty1 = y + 19,
            ty2 = y + 35,
            note = esc(&note),
            restarts = esc(&restarts),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn component(name: &str, lane: &str, health: &'static str) -> ComponentView {
        ComponentView {
            name: name.into(),
            kind: "k".into(),
            lane: lane.into(),
            namespace: lane.into(),
            labels: BTreeMap::new(),
            state: if health == "down" { "stopped" } else { "running" }.into(),
            ready: true,
            paused: false,
            restarts: 0,
            detail: String::new(),
            health,
        }
    }

    fn link(from: &str, to: &str, dropped: u64) -> LinkView {
        LinkView {
            name: format!("{from}->{to}"),
            from: from.into(),
            to: to.into(),
            rate: 2.5,
            delivered: 10,
            dropped,
            faulty: false,
        }
    }

    #[test]
    fn components_follow_the_links_and_carry_their_health() {
        let state = StateView {
            at_ms: 0,
            components: vec![
                component("SENSOR", "iot", "ok"),
                component("MQTT_BROKER", "iot", "ok"),
                component("FLINK", "iot", "down"),
                component("REASONER", "monitoring", "degraded"),
            ],
            links: vec![link("SENSOR", "MQTT_BROKER", 0), link("MQTT_BROKER", "FLINK", 3)],
            faults: vec![],
            incidents: vec![],
        };
        let cols = columns(&state.components, &state.links);
        assert_eq!((cols["SENSOR"], cols["MQTT_BROKER"], cols["FLINK"]), (0, 1, 2));
        let svg = render(&state);
        assert!(svg.contains("data-name=\"FLINK\" data-health=\"down\""), "{svg}");
        assert!(svg.contains("data-name=\"REASONER\" data-health=\"degraded\""));
        assert!(svg.contains("2.5/s ✕3"), "drops are labelled");
        assert!(svg.contains(">IoT path<") && svg.contains(">Monitoring and incidents<"));
        assert!(!svg.contains(">Order services<"), "empty lanes are not drawn");
    }

    #[test]
    fn a_cycle_does_not_loop_and_names_are_escaped() {
        let state = StateView {
            at_ms: 0,
            components: vec![component("A<b>", "x", "ok"), component("B", "x", "ok")],
            links: vec![link("A<b>", "B", 0), link("B", "A<b>", 0)],
            faults: vec![],
            incidents: vec![],
        };
        let svg = render(&state);
        assert!(svg.contains("A&lt;b&gt;") && !svg.contains("A<b>"));
    }
}
