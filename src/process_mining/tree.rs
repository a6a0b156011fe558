//! Process models that generate event streams: process trees, written in pm4py's notation
//! (`->( 'a', X( 'b', 'c' ), +( 'd', 'e' ), *( 'f', 'g' ) )`, `tau` for a silent step), the built-in
//! ones, seeded trace generation, and the model's footprint — the causal edges a miner should find.
//!
//! Operators: `->` sequence, `X` exclusive choice (uniform), `+` parallel (a uniformly random interleaving
//! of the children's traces), `*` loop `*(do, redo)` (do, then redo-and-do again with probability
//! [`LOOP_AGAIN`], at most [`MAX_LOOPS`] times). pm4py's `O` (inclusive or) is refused by name.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

/// Probability that a loop runs its redo part and its body once more.
pub const LOOP_AGAIN: f64 = 0.3;
/// Most extra iterations of a loop in one trace.
pub const MAX_LOOPS: usize = 5;

/// A block-structured process model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessTree {
    /// A visible activity.
    Activity(String),
    /// A silent step.
    Tau,
    /// Children in order.
    Sequence(Vec<ProcessTree>),
    /// One child, chosen uniformly.
    Xor(Vec<ProcessTree>),
    /// All children, interleaved.
    And(Vec<ProcessTree>),
    /// `do`, then any number of `redo, do`.
    Loop(Box<ProcessTree>, Box<ProcessTree>),
}

/// The built-in models, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("sequence", "->( 'A', 'B', 'C', 'D', 'E' )"),
    ("xor", "->( 'A', X( 'B', 'C', 'D' ), 'E' )"),
    ("and", "->( 'A', +( 'B', 'C' ), 'D' )"),
    ("loop", "->( 'A', *( ->( 'B', 'C' ), 'D' ), 'E' )"),
    (
        "order-to-cash",
        "->( 'register order', 'check stock', X( 'cancel order', ->( 'confirm order', \
         +( ->( 'pick items', 'pack items' ), ->( 'create invoice', 'send invoice' ) ), 'ship order', \
         *( ->( 'receive payment', 'check payment' ), 'send reminder' ), 'close order' ) ) )",
    ),
    ("poke-order", "->( 'order created', X( 'order success', 'order rejected', 'order reversed' ) )"),
];

/// A model that does not parse: where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TreeError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What was wrong.
    pub message: String,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, at: usize, message: impl Into<String>) -> TreeError {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        TreeError { line, column, message: message.into() }
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.text[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn node(&mut self, depth: usize) -> Result<ProcessTree, TreeError> {
        if depth > 64 {
            return Err(self.error(self.pos, "nested more than 64 deep"));
        }
        self.skip_space();
        let start = self.pos;
        let rest = &self.text[self.pos..];
        if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            self.pos += 1;
            let body = &self.text[self.pos..];
            let Some(end) = body.find(q) else {
                return Err(self.error(start, "unterminated activity label"));
            };
            let label = body[..end].to_string();
            if label.trim().is_empty() {
                return Err(
                    self.error(start, "an activity label may not be empty (use tau for a silent step)")
                );
            }
            self.pos += end + 1;
            return Ok(ProcessTree::Activity(label));
        }
        if rest.starts_with("tau") && !rest[3..].starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            self.pos += 3;
            return Ok(ProcessTree::Tau);
        }
        let (op, len) = if rest.starts_with("->") {
            ("->", 2)
        } else if let Some(c) = rest.chars().next().filter(|c| matches!(c, 'X' | '+' | '*' | 'O')) {
            (
                if c == 'X' {
                    "X"
                } else if c == '+' {
                    "+"
                } else if c == '*' {
                    "*"
                } else {
                    "O"
                },
                1,
            )
        } else {
            return Err(self.error(start, "expected an activity in quotes, tau, or an operator ->( X( +( *("));
        };
        if op == "O" {
            return Err(self.error(start, "the inclusive-or operator O is not supported (use X or +)"));
        }
        self.pos += len;
        if !self.eat("(") {
            return Err(self.error(self.pos, format!("expected ( after {op}")));
        }
        let mut children = vec![self.node(depth + 1)?];
        loop {
            if self.eat(",") {
                children.push(self.node(depth + 1)?);
            } else if self.eat(")") {
                break;
            } else {
                return Err(self.error(self.pos, "expected , or )"));
            }
        }
        Ok(match op {
            "->" => ProcessTree::Sequence(children),
            "X" => ProcessTree::Xor(children),
            "+" => ProcessTree::And(children),
            _ => {
                if children.len() != 2 {
                    return Err(self.error(
                        start,
                        format!("a loop *(do, redo) takes 2 children, got {}", children.len()),
                    ));
                }
                let redo = children.pop().unwrap_or(ProcessTree::Tau);
                let body = children.pop().unwrap_or(ProcessTree::Tau);
                ProcessTree::Loop(Box::new(body), Box::new(redo))
            }
        })
    }
}

/// What can come before, after and within a subtree (its footprint, for the causal edges).
#[derive(Default)]
struct Footprint {
    first: BTreeSet<String>,
    last: BTreeSet<String>,
    follows: BTreeSet<(String, String)>,
    nullable: bool,
    activities: BTreeSet<String>,
}

fn cross(a: &BTreeSet<String>, b: &BTreeSet<String>, into: &mut BTreeSet<(String, String)>) {
    for x in a {
        for y in b {
            into.insert((x.clone(), y.clone()));
        }
    }
}

impl ProcessTree {
    /// Parses pm4py's notation; `#` starts a comment to the end of the line.
    pub fn parse(text: &str) -> Result<ProcessTree, TreeError> {
        let cleaned: String = text
            .lines()
            .map(|l| {
                // A `#` outside quotes starts a comment.
                let mut quote = None;
                let mut out = String::new();
                for c in l.chars() {
                    match (quote, c) {
                        (None, '#') => break,
                        (None, '\'' | '"') => quote = Some(c),
                        (Some(q), c) if c == q => quote = None,
                        _ => {}
                    }
                    out.push(c);
                }
                out
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut p = Parser { text: &cleaned, pos: 0 };
        let tree = p.node(0)?;
        p.skip_space();
        if p.pos < cleaned.len() {
            return Err(p.error(p.pos, "unexpected text after the model"));
        }
        Ok(tree)
    }

    /// A built-in model by name.
    pub fn builtin(name: &str) -> Option<ProcessTree> {
        BUILTIN.iter().find(|(n, _)| *n == name).and_then(|(_, t)| ProcessTree::parse(t).ok())
    }

    /// One trace, drawn with `rng`.
    pub fn generate(&self, rng: &mut impl Rng, out: &mut Vec<String>) {
        match self {
            ProcessTree::Activity(a) => out.push(a.clone()),
            ProcessTree::Tau => {}
            ProcessTree::Sequence(c) => c.iter().for_each(|t| t.generate(rng, out)),
            ProcessTree::Xor(c) => {
                let i = rng.gen_range(0..c.len());
                c[i].generate(rng, out);
            }
            ProcessTree::And(c) => {
                let mut parts: Vec<std::collections::VecDeque<String>> = c
                    .iter()
                    .map(|t| {
                        let mut v = Vec::new();
                        t.generate(rng, &mut v);
                        v.into()
                    })
                    .collect();
                parts.retain(|p| !p.is_empty());
                while !parts.is_empty() {
                    let i = rng.gen_range(0..parts.len());
                    if let Some(a) = parts[i].pop_front() {
                        out.push(a);
                    }
                    if parts[i].is_empty() {
                        parts.remove(i);
                    }
                }
            }
            ProcessTree::Loop(body, redo) => {
                body.generate(rng, out);
                let mut n = 0;
                while n < MAX_LOOPS && rng.gen_bool(LOOP_AGAIN) {
                    redo.generate(rng, out);
                    body.generate(rng, out);
                    n += 1;
                }
            }
        }
    }

    fn footprint(&self) -> Footprint {
        match self {
            ProcessTree::Activity(a) => {
                let one: BTreeSet<String> = [a.clone()].into();
                Footprint { first: one.clone(), last: one.clone(), activities: one, ..Footprint::default() }
            }
            ProcessTree::Tau => Footprint { nullable: true, ..Footprint::default() },
            ProcessTree::Sequence(c) => {
                let mut f = Footprint { nullable: true, ..Footprint::default() };
                for child in c {
                    let g = child.footprint();
                    f.follows.extend(g.follows.iter().cloned());
                    cross(&f.last, &g.first, &mut f.follows);
                    if f.nullable {
                        f.first.extend(g.first.iter().cloned());
                    }
                    if g.nullable {
                        f.last.extend(g.last.iter().cloned());
                    } else {
                        f.last = g.last.clone();
                    }
                    f.nullable &= g.nullable;
                    f.activities.extend(g.activities);
                }
                f
            }
            ProcessTree::Xor(c) => {
                let mut f = Footprint::default();
                for child in c {
                    let g = child.footprint();
                    f.first.extend(g.first);
                    f.last.extend(g.last);
                    f.follows.extend(g.follows);
                    f.nullable |= g.nullable;
                    f.activities.extend(g.activities);
                }
                f
            }
            ProcessTree::And(c) => {
                let parts: Vec<Footprint> = c.iter().map(ProcessTree::footprint).collect();
                let mut f = Footprint { nullable: true, ..Footprint::default() };
                for (i, g) in parts.iter().enumerate() {
                    f.first.extend(g.first.iter().cloned());
                    f.last.extend(g.last.iter().cloned());
                    f.follows.extend(g.follows.iter().cloned());
                    f.nullable &= g.nullable;
                    f.activities.extend(g.activities.iter().cloned());
                    for (j, h) in parts.iter().enumerate() {
                        if i != j {
                            cross(&g.activities, &h.activities, &mut f.follows);
                        }
                    }
                }
                f
            }
            ProcessTree::Loop(body, redo) => {
                let (b, r) = (body.footprint(), redo.footprint());
                let mut f = Footprint {
                    first: b.first.clone(),
                    last: b.last.clone(),
                    nullable: b.nullable,
                    ..Footprint::default()
                };
                f.follows.extend(b.follows.iter().cloned());
                f.follows.extend(r.follows.iter().cloned());
                cross(&b.last, &r.first, &mut f.follows);
                cross(&r.last, &b.first, &mut f.follows);
                if r.nullable {
                    cross(&b.last, &b.first, &mut f.follows);
                }
                f.activities.extend(b.activities);
                f.activities.extend(r.activities);
                f
            }
        }
    }

    /// The visible activities.
    pub fn activities(&self) -> BTreeSet<String> {
        self.footprint().activities
    }

    /// The generating model's causal edges `a → b`: `b` can directly follow `a`, and never the other way
    /// round (parallel activities follow each other both ways and have no causal edge).
    pub fn causal_edges(&self) -> BTreeSet<(String, String)> {
        causal(&self.footprint().follows)
    }

    /// Activities a trace can start and end with.
    pub fn start_end(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let f = self.footprint();
        (f.first, f.last)
    }
}

/// The causal part of a directly-follows relation.
pub fn causal(follows: &BTreeSet<(String, String)>) -> BTreeSet<(String, String)> {
    follows.iter().filter(|(a, b)| a == b || !follows.contains(&(b.clone(), a.clone()))).cloned().collect()
}

/// The directly-follows relation of a log.
pub fn log_follows<'a>(traces: impl IntoIterator<Item = &'a Vec<String>>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for t in traces {
        for w in t.windows(2) {
            out.insert((w[0].clone(), w[1].clone()));
        }
    }
    out
}

/// Activity frequencies of a log (for reports).
pub fn activity_counts<'a>(traces: impl IntoIterator<Item = &'a Vec<String>>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for t in traces {
        for a in t {
            *out.entry(a.clone()).or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn edges(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn builtins_parse_and_have_the_expected_edges() {
        for (name, _) in BUILTIN {
            assert!(ProcessTree::builtin(name).is_some(), "{name}");
        }
        let xor = ProcessTree::builtin("xor").unwrap();
        assert_eq!(
            xor.causal_edges(),
            edges(&[("A", "B"), ("A", "C"), ("A", "D"), ("B", "E"), ("C", "E"), ("D", "E")])
        );
        let and = ProcessTree::builtin("and").unwrap();
        assert_eq!(
            and.causal_edges(),
            edges(&[("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]),
            "B and C are parallel"
        );
        let lp = ProcessTree::builtin("loop").unwrap();
        assert_eq!(lp.causal_edges(), edges(&[("A", "B"), ("B", "C"), ("C", "D"), ("D", "B"), ("C", "E")]));
        let o2c = ProcessTree::builtin("order-to-cash").unwrap();
        assert_eq!(o2c.activities().len(), 13);
        let (start, end) = o2c.start_end();
        assert_eq!(start, ["register order".to_string()].into());
        assert_eq!(end, ["cancel order".to_string(), "close order".to_string()].into());
    }

    #[test]
    fn traces_follow_the_model_and_the_seed() {
        let tree = ProcessTree::builtin("order-to-cash").unwrap();
        let generate = |seed| {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            (0..200)
                .map(|_| {
                    let mut t = Vec::new();
                    tree.generate(&mut rng, &mut t);
                    t
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (generate(1), generate(1));
        assert_eq!(a, b);
        assert_ne!(a, generate(2));
        // Every generated step is one the footprint allows, and the log shows every causal edge.
        let follows = log_follows(&a);
        assert!(follows.is_subset(&tree.footprint().follows));
        assert_eq!(causal(&follows), tree.causal_edges());
    }

    #[test]
    fn bad_models_name_line_and_column() {
        let e = ProcessTree::parse("->( 'a',\n  X( 'b' 'c' ) )").unwrap_err();
        assert_eq!((e.line, e.column), (2, 10), "{e}: points at the unexpected 'c'");
        assert!(e.message.contains("expected , or )"));
        let e = ProcessTree::parse("O( 'a', 'b' )").unwrap_err();
        assert!(e.message.contains("inclusive-or"), "{e}");
        let e = ProcessTree::parse("*( 'a' )").unwrap_err();
        assert!(e.message.contains("2 children"), "{e}");
        let e = ProcessTree::parse("->( 'a', 'b ) ").unwrap_err();
        assert!(e.message.contains("unterminated"), "{e}");
        assert!(ProcessTree::parse("->( 'a' ) extra").is_err());
        assert_eq!(
            ProcessTree::parse("# a comment\n->( 'a#1', tau ) # end").unwrap(),
            ProcessTree::Sequence(vec![ProcessTree::Activity("a#1".into()), ProcessTree::Tau])
        );
    }
}
