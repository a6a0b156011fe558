//! A Chaos Mesh Workflow as SVG: its templates as a tree from the entry (Serial children numbered in order,
//! Parallel children marked ∥, a Task's conditional branches dashed), each node coloured by the state its
//! events give it — pending, running, accomplished, ended by a deadline, or aborted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::diagram::esc;
use crate::mesh::MeshEvent;
use crate::mesh::plan::{NodeBody, WorkflowPlan};

const NODE_W: i64 = 180;
const NODE_H: i64 = 40;
const COL_W: i64 = 230;
const ROW_H: i64 = 54;
const MARGIN: i64 = 14;

/// A template's state, from the workflow's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    /// Not created yet.
    Pending,
    /// Created and not ended.
    Running,
    /// Ended by itself.
    Accomplished,
    /// Ended by its own or its parent's deadline.
    Deadline,
    /// Running when the workflow was aborted (a failed status check).
    Aborted,
}

impl NodeState {
    fn colour(self) -> &'static str {
        match self {
            NodeState::Pending => "#b9bfca",
            NodeState::Running => "#2e6ebe",
            NodeState::Accomplished => "#2e9d5b",
            NodeState::Deadline => "#7fae3f",
            NodeState::Aborted => "#d64545",
        }
    }
}

/// Every template's state after `events` (the workflow's own, in time order).
pub fn states(plan: &WorkflowPlan, events: &[MeshEvent]) -> BTreeMap<String, NodeState> {
    let mut states: BTreeMap<String, NodeState> =
        plan.nodes.iter().map(|n| (n.name.clone(), NodeState::Pending)).collect();
    for e in events {
        let next = match e.reason.as_str() {
            "EntryCreated" | "NodesCreated" => NodeState::Running,
            "NodeAccomplished" => NodeState::Accomplished,
            "NodeDeadlineExceed" | "ParentNodeDeadlineExceed" => NodeState::Deadline,
            "WorkflowAborted" => {
                for s in states.values_mut().filter(|s| **s == NodeState::Running) {
                    *s = NodeState::Aborted;
                }
                continue;
            }
            _ => continue,
        };
        for t in &e.targets {
            let Some(s) = states.get_mut(t) else { continue };
            // A deadline is followed by NodeAccomplished for the same node: the deadline is what it met.
            if !(next == NodeState::Accomplished && *s == NodeState::Deadline) {
                *s = next;
            }
        }
    }
    states
}

fn kind(body: &NodeBody) -> &'static str {
    match body {
        NodeBody::Serial(_) => "Serial",
        NodeBody::Parallel(_) => "Parallel",
        NodeBody::Suspend => "Suspend",
        NodeBody::Chaos(_) => "Chaos",
        NodeBody::Schedule(_) => "Schedule",
        NodeBody::Task { .. } => "Task",
        NodeBody::StatusCheck { .. } => "StatusCheck",
    }
}

/// The workflow `name` with its templates' `states`.
pub fn render(plan: &WorkflowPlan, states: &BTreeMap<String, NodeState>) -> String {
    // Tree layout: depth is the column; leaves take the next row, a parent sits at its first child's row.
    // A template reached twice is drawn once; the second edge points at it.
    let mut pos: BTreeMap<usize, (i64, i64)> = BTreeMap::new();
    let mut edges: Vec<(usize, usize, String, bool)> = Vec::new();
    let mut next_row = 0;
    fn place(
        plan: &WorkflowPlan,
        i: usize,
        depth: i64,
        next_row: &mut i64,
        pos: &mut BTreeMap<usize, (i64, i64)>,
        edges: &mut Vec<(usize, usize, String, bool)>,
    ) -> i64 {
        if let Some(&(_, row)) = pos.get(&i) {
            return row;
        }
        pos.insert(i, (depth, *next_row));
        let children: Vec<(usize, String, bool)> = match &plan.nodes[i].body {
            NodeBody::Serial(c) => {
                c.iter().enumerate().map(|(k, &c)| (c, format!("{}", k + 1), false)).collect()
            }
            NodeBody::Parallel(c) => c.iter().map(|&c| (c, "∥".to_owned(), false)).collect(),
            NodeBody::Task { branches, .. } => branches
                .iter()
                .map(|b| (b.target, b.text.clone().unwrap_or_else(|| "always".into()), true))
                .collect(),
            _ => Vec::new(),
        };
        let mut first = None;
        for (c, label, dashed) in children {
            if c >= plan.nodes.len() {
                continue;
            }
            edges.push((i, c, label, dashed));
            let row = place(plan, c, depth + 1, next_row, pos, edges);
            first.get_or_insert(row);
        }
        match first {
            Some(row) => {
                pos.insert(i, (depth, row));
                row
            }
            None => {
                let row = *next_row;
                pos.insert(i, (depth, row));
                *next_row += 1;
                row
            }
        }
    }
    if plan.entry < plan.nodes.len() {
        place(plan, plan.entry, 0, &mut next_row, &mut pos, &mut edges);
    }
    let xy = |i: usize| pos.get(&i).map(|&(c, r)| (MARGIN + c * COL_W, MARGIN + r * ROW_H));
    let cols = pos.values().map(|p| p.0).max().unwrap_or(0);
    let (width, height) = (MARGIN * 2 + cols * COL_W + NODE_W, MARGIN * 2 + next_row.max(1) * ROW_H);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"workflow\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"system-ui, sans-serif\" font-size=\"12\">"
    );
    for (from, to, label, dashed) in &edges {
        let (Some((fx, fy)), Some((tx, ty))) = (xy(*from), xy(*to)) else { continue };
        let (x1, y1, x2, y2) = (fx + NODE_W, fy + NODE_H / 2, tx, ty + NODE_H / 2);
        let bend = ((x2 - x1) / 2).max(20);
        let _ = write!(
            svg,
            "<path d=\"M {x1} {y1} C {c1} {y1}, {c2} {y2}, {x2} {y2}\" fill=\"none\" stroke=\"#9aa1ad\"{dash}/>\
             <text x=\"{lx}\" y=\"{ly}\" font-size=\"10\" fill=\"#5a6273\">{label}</text>",
            c1 = x1 + bend,
            c2 = x2 - bend,
            dash = if *dashed { " stroke-dasharray=\"5 3\"" } else { "" },
            lx = x2 - 16,
            ly = y2 - 4,
            label = esc(label),
        );
    }
    for (i, node) in plan.nodes.iter().enumerate() {
        let Some((x, y)) = xy(i) else { continue };
        let state = states.get(&node.name).copied().unwrap_or(NodeState::Pending);
        let deadline =
            node.deadline.map(|d| format!(" · {}", humantime::format_duration(d))).unwrap_or_default();
        let _ = write!(
            svg,
            "<g class=\"wnode\" data-name=\"{name}\" data-state=\"{state}\"><title>{name} ({kind}): {state}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"white\" stroke=\"{colour}\" \
             stroke-width=\"2\"/><rect x=\"{x}\" y=\"{y}\" width=\"7\" height=\"{NODE_H}\" rx=\"3\" fill=\"{colour}\"/>\
             <text x=\"{tx}\" y=\"{ty1}\" font-weight=\"600\">{name}</text>\
             <text x=\"{tx}\" y=\"{ty2}\" font-size=\"10\" fill=\"#5a6273\">{kind}{deadline} · {state}</text></g>",
            name = esc(&node.name),
            state = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            kind = kind(&node.body),
            colour = state.colour(),
            tx = x + 14,
            ty1 = y + 16,
            ty2 = y + 31,
        );
    }
    svg.push_str("</svg>");
    svg
}
