//! Fluentd v1 tag patterns, as used in `<match PATTERN>` and `<filter PATTERN>`.
//!
//! Fluentd compiles each glob (`GlobMatchPattern` in `lib/fluent/match.rb`) to a Ruby regex anchored
//! with `\A` and `\Z`; several space-separated globs in one directive match if any of them does, and a
//! lone `**` matches every tag. Fluentd's regex for `a.**` needs a look-ahead (`(?![^.])`, "the next
//! character is a dot or the end"), which the `regex` crate does not offer, so this module compiles the
//! same construction to a small Thompson-NFA program and runs it in linear time. The rules, character for
//! character as Fluentd builds them:
//!
//! * `*` matches any run of characters without a dot (one tag part, possibly empty);
//! * `**` matches anything; `**.` (with the dot) matches "anything ending in a dot, or nothing", so
//!   `**.b` matches `b` and `a.b`; a dot before `**` requires the next character to be a dot or the end,
//!   so `a.**` matches `a`, `a.b`, `a.b.c`, but not `ab`;
//! * `{x,y}` is an alternation of nested patterns; `,` and `}` outside braces are literal characters;
//! * `\c` is the literal character `c`; every other character is literal; a trailing dot is dropped
//!   (`a.` matches `a`), as in Fluentd;
//! * the end anchor is Ruby's `\Z`, which also accepts one trailing newline.
//!
//! One deliberate difference: a `{` without its `}` is a configuration error here; Fluentd would quietly
//! build a pattern that matches its own regex source text.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A pattern that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagPatternError {
    /// The directive argument has no pattern at all.
    #[error("empty tag pattern")]
    Empty,
    /// A `{` was never closed.
    #[error("unclosed '{{' in tag pattern {pattern:?}")]
    UnclosedBrace {
        /// The offending glob.
        pattern: String,
    },
}

/// The space-separated set of globs of one `<match>` or `<filter>` directive.
#[derive(Clone)]
pub struct TagPattern {
    source: String,
    globs: Vec<Glob>,
    /// Tags already matched against the globs, and the answers (shared by clones).
    cache: Arc<Mutex<MatchCache>>,
}

/// How many tags a pattern remembers, as Fluentd's `EventRouter::MatchCache` (`MATCH_CACHE_SIZE`).
const MATCH_CACHE_SIZE: usize = 1024;

/// The answers for the most recent distinct tags; the oldest is forgotten first, as in Fluentd. A flow
/// has a handful of tags and routes every log line, so nearly every match is a lookup.
#[derive(Default)]
struct MatchCache {
    answers: BTreeMap<Box<str>, bool>,
    order: VecDeque<Box<str>>,
}

impl TagPattern {
    /// Compiles a directive argument such as `**.nifi.platform**` or `a.* b.**`.
    pub fn parse(source: &str) -> Result<Self, TagPatternError> {
        let globs = source.split_whitespace().map(Glob::parse).collect::<Result<Vec<_>, _>>()?;
        if globs.is_empty() {
            return Err(TagPatternError::Empty);
        }
        Ok(Self { source: source.to_string(), globs, cache: Arc::default() })
    }

    /// Whether `tag` matches any of the globs.
    pub fn matches(&self, tag: &str) -> bool {
        if self.globs.iter().any(|g| matches!(g, Glob::All)) {
            return true;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&answer) = cache.answers.get(tag) {
            return answer;
        }
        let chars: Vec<char> = tag.chars().collect();
        let answer = self.globs.iter().any(|g| g.matches(&chars));
        if cache.order.len() >= MATCH_CACHE_SIZE
            && let Some(oldest) = cache.order.pop_front()
        {
            cache.answers.remove(&oldest);
        }
        cache.answers.insert(tag.into(), answer);
        cache.order.push_back(tag.into());
        answer
    }

    /// The pattern text as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TagPattern").field(&self.source).finish()
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// One glob: either Fluentd's `AllMatchPattern` (a lone `**`) or a compiled program.
#[derive(Debug, Clone)]
enum Glob {
    All,
    Program(Vec<Inst>),
}

/// The pieces of a glob, mirroring the regex fragments Fluentd emits.
#[derive(Debug, Clone)]
enum Node {
    /// One literal character.
    Lit(char),
    /// `[^\.]*`
    PartAny,
    /// `.*` (Ruby's `.` excludes the newline).
    DeepAny,
    /// `(?:.*\.|\A)`
    DeepAnyDot,
    /// `(?![^\.])`
    DotOrEnd,
    /// A brace alternation.
    Alt(Vec<Vec<Node>>),
}

/// Instructions of the matching program.
#[derive(Debug, Clone, Copy)]
enum Inst {
    Char(char),
    NotDot,
    NotNewline,
    Split(usize, usize),
    Jump(usize),
    AssertStart,
    AssertDotOrEnd,
    Match,
}

impl Glob {
    fn parse(pat: &str) -> Result<Self, TagPatternError> {
        if pat == "**" {
            return Ok(Glob::All);
        }
        let nodes = parse_nodes(pat)?;
        let mut program = Vec::new();
        compile_seq(&nodes, &mut program);
        program.push(Inst::Match);
        Ok(Glob::Program(program))
    }

    fn matches(&self, tag: &[char]) -> bool {
        match self {
            Glob::All => true,
            Glob::Program(program) => run(program, tag),
        }
    }
}

/// Builds the node list with exactly the decisions of Fluentd's `GlobMatchPattern#initialize`.
fn parse_nodes(pat: &str) -> Result<Vec<Node>, TagPatternError> {
    let chars: Vec<char> = pat.chars().collect();
    // `alternatives` collects finished branches of each open brace; `seqs` holds the sequence being built
    // at each nesting level (index 0 is the top level).
    let mut alternatives: Vec<Vec<Vec<Node>>> = Vec::new();
    let mut seqs: Vec<Vec<Node>> = vec![Vec::new()];
    let mut escape = false;
    let mut dot = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if escape {
            push(&mut seqs, Node::Lit(c));
            escape = false;
            i += 1;
            continue;
        }
        if c == '*' && chars.get(i + 1) == Some(&'*') {
            if dot {
                push(&mut seqs, Node::DotOrEnd);
                dot = false;
            }
            if chars.get(i + 2) == Some(&'.') {
                push(&mut seqs, Node::DeepAnyDot);
                i += 3;
            } else {
                push(&mut seqs, Node::DeepAny);
                i += 2;
            }
            continue;
        }
        if dot {
            push(&mut seqs, Node::Lit('.'));
            dot = false;
        }
        match c {
            '\\' => escape = true,
            '.' => dot = true,
            '*' => push(&mut seqs, Node::PartAny),
            '{' => {
                alternatives.push(Vec::new());
                seqs.push(Vec::new());
            }
            '}' if !alternatives.is_empty() => {
                let branch = seqs.pop().unwrap_or_default();
                let mut branches = alternatives.pop().unwrap_or_default();
                branches.push(branch);
                push(&mut seqs, Node::Alt(branches));
            }
            ',' if !alternatives.is_empty() => {
                let branch = seqs.pop().unwrap_or_default();
                if let Some(open) = alternatives.last_mut() {
                    open.push(branch);
                }
                seqs.push(Vec::new());
            }
            other => push(&mut seqs, Node::Lit(other)),
        }
        i += 1;
    }
    if !alternatives.is_empty() {
        return Err(TagPatternError::UnclosedBrace { pattern: pat.to_string() });
    }
    // A pending dot at the very end is dropped, exactly as Fluentd's loop leaves it unflushed.
    Ok(seqs.pop().unwrap_or_default())
}

fn push(seqs: &mut [Vec<Node>], node: Node) {
    if let Some(seq) = seqs.last_mut() {
        seq.push(node);
    }
}

fn compile_seq(nodes: &[Node], program: &mut Vec<Inst>) {
    for node in nodes {
        compile_node(node, program);
    }
}

fn compile_node(node: &Node, program: &mut Vec<Inst>) {
    match node {
        Node::Lit(c) => program.push(Inst::Char(*c)),
        Node::PartAny => compile_star(Inst::NotDot, program),
        Node::DeepAny => compile_star(Inst::NotNewline, program),
        Node::DeepAnyDot => {
            // `(?:.*\.|\A)`: the second branch is the start-of-tag assertion.
            let split = program.len();
            program.push(Inst::Split(0, 0));
            let first = program.len();
            compile_star(Inst::NotNewline, program);
            program.push(Inst::Char('.'));
            let jump = program.len();
            program.push(Inst::Jump(0));
            let second = program.len();
            program.push(Inst::AssertStart);
            let end = program.len();
            program[split] = Inst::Split(first, second);
            program[jump] = Inst::Jump(end);
        }
        Node::DotOrEnd => program.push(Inst::AssertDotOrEnd),
        Node::Alt(branches) => compile_alternation(branches, program),
    }
}

/// `x*` as `L: split(L+1, end); x; jump L`.
fn compile_star(inst: Inst, program: &mut Vec<Inst>) {
    let split = program.len();
    program.push(Inst::Split(0, 0));
    program.push(inst);
    program.push(Inst::Jump(split));
    let end = program.len();
    program[split] = Inst::Split(split + 1, end);
}

fn compile_alternation(branches: &[Vec<Node>], program: &mut Vec<Inst>) {
    let mut jumps = Vec::new();
    for (index, branch) in branches.iter().enumerate() {
        if index + 1 < branches.len() {
            let split = program.len();
            program.push(Inst::Split(0, 0));
            let start = program.len();
            compile_seq(branch, program);
            jumps.push(program.len());
            program.push(Inst::Jump(0));
            let next = program.len();
            program[split] = Inst::Split(start, next);
        } else {
            compile_seq(branch, program);
        }
    }
    let end = program.len();
    for jump in jumps {
        program[jump] = Inst::Jump(end);
    }
}

/// Runs the program over the whole tag (anchored at both ends, Ruby `\Z` semantics at the end).
fn run(program: &[Inst], tag: &[char]) -> bool {
    let mut current: Vec<usize> = Vec::with_capacity(program.len());
    let mut next: Vec<usize> = Vec::with_capacity(program.len());
    let mut seen = vec![usize::MAX; program.len()];
    let mut generation = 0;
    add_thread(program, tag, 0, 0, &mut current, &mut seen, generation);
    for pos in 0..=tag.len() {
        let at_end = pos == tag.len() || (pos + 1 == tag.len() && tag[pos] == '\n');
        if at_end && current.iter().any(|&pc| matches!(program[pc], Inst::Match)) {
            return true;
        }
        if pos == tag.len() {
            break;
        }
        let c = tag[pos];
        generation += 1;
        next.clear();
        for &pc in &current {
            let consumes = match program[pc] {
                Inst::Char(expected) => expected == c,
                Inst::NotDot => c != '.',
                Inst::NotNewline => c != '\n',
                _ => false,
            };
            if consumes {
                add_thread(program, tag, pc + 1, pos + 1, &mut next, &mut seen, generation);
            }
        }
        std::mem::swap(&mut current, &mut next);
        if current.is_empty() {
            return false;
        }
    }
    false
}

/// Adds `pc` and everything reachable from it without consuming input, evaluating assertions at `pos`.
fn add_thread(
    program: &[Inst],
    tag: &[char],
    pc: usize,
    pos: usize,
    list: &mut Vec<usize>,
    seen: &mut [usize],
    generation: usize,
) {
    let mut stack = vec![pc];
    while let Some(pc) = stack.pop() {
        if seen[pc] == generation {
            continue;
        }
        seen[pc] = generation;
        match program[pc] {
            Inst::Split(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            Inst::Jump(target) => stack.push(target),
            Inst::AssertStart => {
                if pos == 0 {
                    stack.push(pc + 1);
                }
            }
            Inst::AssertDotOrEnd => {
                if tag.get(pos).is_none_or(|&c| c == '.') {
                    stack.push(pc + 1);
                }
            }
            Inst::Char(_) | Inst::NotDot | Inst::NotNewline | Inst::Match => list.push(pc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, tag: &str) -> bool {
        TagPattern::parse(pattern).unwrap().matches(tag)
    }

    #[test]
    fn remembered_answers_are_the_computed_ones_and_the_memory_is_bounded() {
        let p = TagPattern::parse("a.* {b,c}.**").unwrap();
        let tag = |i: usize| match i % 4 {
            0 => format!("a.x{i}"),
            1 => format!("a.x{i}.y"),
            2 => format!("c.{i}"),
            _ => format!("d{i}"),
        };
        for round in 0..2 {
            for i in 0..3 * MATCH_CACHE_SIZE {
                let t = tag(i);
                let fresh = TagPattern::parse("a.* {b,c}.**").unwrap().matches(&t);
                assert_eq!(p.matches(&t), fresh, "{t} in round {round}");
                assert_eq!(fresh, i % 4 == 0 || i % 4 == 2, "{t}");
            }
        }
        let cache = p.cache.lock().unwrap();
        assert_eq!((cache.answers.len(), cache.order.len()), (MATCH_CACHE_SIZE, MATCH_CACHE_SIZE));
    }

    #[test]
    fn literal_parts() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a.b.c"));
        assert!(!m("a.b", "a.bc"));
        assert!(!m("a.b", "axb"), "a dot is literal, not a regex wildcard");
        assert!(m("nodered-flow.x", "nodered-flow.x"), "punctuation is literal");
    }

    #[test]
    fn single_star_is_one_part() {
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a.b.c"));
        assert!(m("a.*", "a."), "`*` may match an empty part");
        assert!(!m("a.*", "a"));
        assert!(m("*.b", "x.b"));
        assert!(m("a.*.c", "a.b.c"));
        assert!(!m("a.*.c", "a.b.x.c"));
        assert!(m("**.sensor.*.platform", "com.chaoslab.sensor.s1.platform"));
    }

    #[test]
    fn double_star_spans_zero_or_more_parts() {
        assert!(m("a.**", "a"), "Fluentd: a.** matches a");
        assert!(m("a.**", "a.b"));
        assert!(m("a.**", "a.b.c"));
        assert!(!m("a.**", "ab"), "the dot before ** keeps part boundaries");
        assert!(!m("a.**", "b.a"));
        assert!(m("**.b", "b"));
        assert!(m("**.b", "a.b"));
        assert!(m("**.b", "x.y.b"));
        assert!(!m("**.b", "ab"));
        assert!(m("a.**.b", "a.b"));
        assert!(m("a.**.b", "a.x.y.b"));
        assert!(!m("a.**.b", "ab"));
        assert!(m("*.**", "noise"));
        assert!(m("*.**", "com.chaoslab.nifi.platform"));
    }

    #[test]
    fn lone_double_star_matches_everything() {
        assert!(m("**", ""));
        assert!(m("**", "anything.at.all"));
    }

    #[test]
    fn double_star_inside_a_part() {
        assert!(m("**signal**", "signal.MqttConnectionError"));
        assert!(m("**signal**", "com.x.signal.Foo"));
        assert!(m("**signal**", "com.chaoslab.nodered.mqtt.app.signal.MissingTimeInformation"));
        assert!(!m("**signal**", "com.chaoslab.nifi.platform"));
        assert!(m("**.nifi.platform**", "com.chaoslab.nifi.platform"));
        assert!(m("**.nifi.platform**", "com.rdsea.nifi.platform"));
        assert!(m("**.nifi.platform**", "com.chaoslab.nifi.platform.extra"));
        assert!(m("**.nifi.platform**", "nifi.platform"), "`**.` may match nothing at the start");
        assert!(!m("**.nifi.platform**", "xnifi.platform"), "`**.` needs a dot or the start");
        assert!(m("**.spark**", "com.chaoslab.spark-kmeans.app"));
        assert!(!m("**.mqtt.platform", "com.chaoslab.mqtt.platform.x"));
    }

    #[test]
    fn double_star_dot_can_match_at_start_only_via_anchor() {
        assert!(m("**.platform**", "platform"));
        assert!(m("**.platform**", "x.platform"));
        assert!(!m("**.platform**", "xplatform"));
    }

    #[test]
    fn brace_alternatives_with_nested_patterns() {
        let p = "{**flink.platform**,**nifi.platform**,**spark.platform**}";
        assert!(m(p, "com.chaoslab.nifi.platform"));
        assert!(m(p, "com.chaoslab.flink.platform"));
        assert!(!m(p, "com.chaoslab.nodered.platform"));
        assert!(m("{docker.**,**.platform**}", "docker.mqtt"));
        assert!(m("{docker.**,**.platform**}", "docker"));
        assert!(m("{docker.**,**.platform**}", "com.chaoslab.nodered.platform"));
        assert!(!m("{docker.**,**.platform**}", "com.chaoslab.nodered.app"));
        assert!(m("a.{b,c}.d", "a.c.d"));
        assert!(!m("a.{b,c}.d", "a.e.d"));
        assert!(m("a.{b,{c,d}.e}", "a.d.e"), "nested braces");
        assert!(!m("a.{b,{c,d}.e}", "a.d"));
        assert!(m("{,x}y", "y"), "an empty alternative matches the empty string");
    }

    #[test]
    fn several_patterns_in_one_directive() {
        let p = TagPattern::parse("a.b  c.**\td").unwrap();
        assert!(p.matches("a.b"));
        assert!(p.matches("c.x.y"));
        assert!(p.matches("d"));
        assert!(!p.matches("e"));
        assert_eq!(p.as_str(), "a.b  c.**\td");
    }

    #[test]
    fn punctuation_outside_braces_and_escapes_are_literal() {
        assert!(m("a,b", "a,b"));
        assert!(m("a}b", "a}b"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\.b", "a.b"));
    }

    #[test]
    fn trailing_dot_is_dropped_like_fluentd() {
        assert!(m("a.", "a"));
        assert!(!m("a.", "a."));
    }

    #[test]
    fn end_anchor_accepts_one_trailing_newline_like_ruby() {
        assert!(m("a.b", "a.b\n"));
        assert!(!m("a.b", "a.b\n\n"));
    }

    #[test]
    fn errors() {
        assert_eq!(TagPattern::parse("  ").unwrap_err(), TagPatternError::Empty);
        assert!(matches!(TagPattern::parse("a.{b,c").unwrap_err(), TagPatternError::UnclosedBrace { .. }));
    }

    #[test]
    fn long_tags_match_in_linear_time() {
        let tag = format!("{}.signal.x", "part.".repeat(200));
        assert!(m("**.**.**.**signal**.**", &tag));
        assert!(!m("**.**.**.**nomatch**.**", &tag));
    }
}
