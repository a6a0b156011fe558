//! Tests of reading Fluentd configurations into typed directives.

use super::*;
use crate::monitoring::logs::config::{
    ConfigError, DEFAULT_HTTP_PORT, DirectiveKind, Filter, InjectTime, Output, RecordValue,
};
use std::io::Write;
use std::path::Path;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str(text, Path::new("/virtual/fluent.conf"))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn sources_are_read_with_defaults_and_parse_settings() {
    let config = parse(
        "<source>\n  @type forward\n  port 24225\n</source>\n<source>\n  @type http\n  bind 127.0.0.1\n\
         \x20 cors_allow_origins [\"*\"]\n  <parse>\n    @type json\n    time_key time\n    keep_time_key true\n\
         \x20   time_type string\n    time_format %Y-%m-%dT%H:%M:%S.%NZ\n  </parse>\n</source>\n",
    )
    .unwrap();
    let forward = config.forward_source().unwrap();
    assert_eq!((forward.bind.as_str(), forward.port), ("0.0.0.0", 24225));
    let http = config.http_source().unwrap();
    assert_eq!((http.bind.as_str(), http.port), ("127.0.0.1", DEFAULT_HTTP_PORT));
    assert_eq!(http.time_key, "time");
    assert!(http.keep_time_key);
    assert_eq!(http.time_format.as_deref(), Some("%Y-%m-%dT%H:%M:%S.%NZ"));
    assert!(config.notes.is_empty(), "{:?}", config.notes);
}

#[test]
fn a_forward_sources_security_is_read_and_what_is_not_implemented_is_refused() {
    let with = |security: &str| {
        format!("<source>\n  @type forward\n  <security>\n{security}  </security>\n</source>\n")
    };
    let config = parse(&with(
        "    self_hostname chaoslab\n    shared_key s3cret\n    user_auth true\n    <user>\n      username alice\n\
         \x20     password pw\n    </user>\n",
    ))
    .unwrap();
    let security = config.forward_source().unwrap().security.clone().unwrap();
    assert_eq!((security.self_hostname.as_str(), security.shared_key.as_str()), ("chaoslab", "s3cret"));
    assert_eq!(security.users, [("alice".to_string(), "pw".to_string())]);
    assert!(
        !format!("{security:?}").contains("s3cret") && !format!("{security:?}").contains("pw"),
        "no secret in Debug"
    );
    assert!(config.notes.is_empty(), "{:?}", config.notes);
    assert_eq!(
        parse("<source>\n  @type forward\n</source>\n").unwrap().forward_source().unwrap().security,
        None
    );

    let e = err(&with("    self_hostname chaoslab\n"));
    assert!(e.contains("fluent.conf:3") && e.contains("`shared_key` is required"), "{e}");
    let e = err(&with("    self_hostname h\n    shared_key k\n    user_auth true\n"));
    assert!(e.contains("needs at least one <user>"), "{e}");
    let e = err(&with(
        "    self_hostname h\n    shared_key k\n    <client>\n      host 10.0.0.1\n    </client>\n",
    ));
    assert!(e.contains("fluent.conf:6") && e.contains("<client>"), "{e}");
    let e = err(&with("    self_hostname h\n    shared_key k\n    allow_anonymous_source false\n"));
    assert!(e.contains("fluent.conf:6") && e.contains("allow_anonymous_source"), "{e}");
}

#[test]
fn comments_quotes_and_values() {
    let config = parse(
        "# leading comment\n<match a.**>   # trailing comment\n  @type file\n  path /tmp/a#b # comment\n\
         \x20 <inject>\n    tag_key \"log name\\t\"\n    time_key 'it''s'\n  </inject>\n</match>\n",
    );
    // `'it''s'` is two adjacent single-quoted strings, which Fluentd rejects as text after a value.
    assert!(config.unwrap_err().to_string().contains("fluent.conf:7"));
    let config = parse(
        "<match a.**>\n  @type file\n  path /tmp/a#b # comment\n  <inject>\n    tag_key \"log name\\t\"\n\
         \x20   time_key 'it\\'s'\n    time_type string\n    time_format %s\n    localtime false\n  </inject>\n</match>\n",
    )
    .unwrap();
    let DirectiveKind::Match(Output::File { path, inject }) = &config.root[0].kind else { panic!() };
    assert_eq!(path, "/tmp/a#b");
    assert_eq!(inject.tag_key.as_deref(), Some("log name\t"));
    assert_eq!(inject.time, Some(("it's".to_string(), InjectTime::String("%s".to_string()))));
    assert!(config.notes.is_empty(), "{:?}", config.notes);
}

#[test]
fn multi_line_json_values() {
    let config = parse(
        "<filter x>\n  @type record_transformer\n  <record>\n    list [1, # one\n      \"a]#\"]\n    plain v\n  </record>\n\
         </filter>\n",
    )
    .unwrap();
    let DirectiveKind::Filter(Filter::Record(edit)) = &config.root[0].kind else { panic!() };
    assert_eq!(edit.set[0], ("list".to_string(), RecordValue::Json(serde_json::json!([1, "a]#"]))));
    assert_eq!(edit.set[1].0, "plain");
}

#[test]
fn syntax_errors_name_file_and_line() {
    assert_eq!(
        err("<match a>\n  @type null\n</filter>\n"),
        "/virtual/fluent.conf:3: syntax error: found </filter> while <match> is open"
    );
    assert!(err("<match a>\n  @type null\n").contains(":3: syntax error: end of file inside <match>"));
    assert!(err("<match a\n").contains(":1: syntax error: expected '>'"));
    assert!(err("<match a>\n  @type \"null\" x\n</match>\n").contains(":2: syntax error: unexpected 'x'"));
    assert!(err("<match a>\n @type null\n tag \"abc\n</match>\n").contains(":3: syntax error: unterminated"));
    assert!(err("<match a>\n @type null\n x \"#{ENV['A']}\"\n</match>\n").contains("embedded Ruby"));
    assert!(err("<match a>\n @type null\n x \"\\q\"\n</match>\n").contains("back-slash escape"));
    assert!(err("</match>\n").contains("without a matching"));
    assert!(err("<bogus>\n</bogus>\n").contains("unknown top-level directive <bogus>"));
}

#[test]
fn unsupported_plugins_are_refused_with_reason() {
    let e = err("<match a>\n  @type loki\n</match>\n");
    assert!(e.contains("fluent.conf:1: <match a>: output @type loki is not supported"), "{e}");
    assert!(e.contains("implemented outputs are"), "{e}");
    let e = err("<source>\n  @type tail\n</source>\n");
    assert!(e.contains("@type tail is not supported"), "{e}");
    let e = err("<filter a>\n  @type grep\n</filter>\n");
    assert!(e.contains("filter @type grep is not supported"), "{e}");
    let e = err("<match a>\n  @type kafka_buffered\n</match>\n");
    assert!(e.contains("kafka_buffered"), "{e}");
    let e =
        err("<filter a>\n  @type record_modifier\n  <record>\n    x ${Time.now}\n  </record>\n</filter>\n");
    assert!(e.contains(":4:") && e.contains("unsupported placeholder"), "{e}");
    let e = err(
        "<filter a>\n  @type record_transformer\n  <record>\n    x ${record['k']}\n  </record>\n</filter>\n",
    );
    assert!(e.contains("without enable_ruby"), "{e}");
}

#[test]
fn invalid_parameters_are_reported() {
    assert!(err("<match a>\n  @type rewrite_tag_filter\n</match>\n").contains("missing rewrite rules"));
    assert!(err("<match a>\n  @type file\n</match>\n").contains("parameter `path` is required"));
    assert!(
        err("<match a>\n @type relabel\n @label @NOPE\n</match>\n").contains("label @NOPE is not defined")
    );
    let e = err(
        "<match a>\n  @type rewrite_tag_filter\n  <rule>\n    key k\n    pattern /(?<=x)y/\n    tag t\n  </rule>\n</match>\n",
    );
    assert!(e.contains(":5:") && e.contains("invalid regular expression"), "{e}");
    assert!(err("<match {a,b>\n @type null\n</match>\n").contains("unclosed"));
    assert!(err("<source>\n @type http\n port 99999\n</source>\n").contains("port number"));
    assert!(err("<label FOO>\n</label>\n").contains("starting with '@'"));
}

#[test]
fn unused_parameters_become_notes() {
    let config = parse("<match a>\n  @type null\n  colour blue\n</match>\n<filter docker.**>\n  @type concat\n  key log\n</filter>\n").unwrap();
    assert_eq!(config.notes.len(), 2, "{:?}", config.notes);
    assert!(config.notes[0].contains("fluent.conf:3: parameter `colour` in <match a> is not used"));
    assert!(config.notes[1].contains("filter concat on <filter docker.**> accepted as a no-op"));
}

#[test]
fn empty_pattern_means_everything_and_labels_are_kept_apart() {
    let config = parse("<label @FLUENT_LOG>\n  <match fluent.*>\n    @type stdout\n  </match>\n</label>\n<match>\n  @type null\n</match>\n").unwrap();
    assert!(config.root[0].pattern.matches("anything"));
    assert_eq!(config.labels.len(), 1);
    assert!(config.labels["@FLUENT_LOG"][0].pattern.matches("fluent.info"));
}

#[test]
fn includes_resolve_relative_to_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    let write = |name: &str, text: &str| {
        let mut f = std::fs::File::create(dir.path().join(name)).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    write(
        "main.conf",
        "@include conf.d/rules.conf\n<match **>\n  @type copy\n  @include conf.d/store.conf\n</match>\n",
    );
    write("conf.d/rules.conf", "@include b*.conf\n<match a>\n  @type null\n</match>\n");
    write("conf.d/b1.conf", "<match b1>\n  @type null\n</match>\n");
    write("conf.d/b2.conf", "<match b2>\n  @type null\n</match>\n");
    write("conf.d/store.conf", "<store>\n  @type stdout\n</store>\n");
    let config = Config::load(&dir.path().join("main.conf")).unwrap();
    let patterns: Vec<&str> = config.root.iter().map(|d| d.pattern.as_str()).collect();
    assert_eq!(patterns, ["b1", "b2", "a", "**"]);
    assert!(config.root[2].origin.file.ends_with("conf.d/rules.conf"));
    assert_eq!(config.root[2].origin.line, 2);
    let DirectiveKind::Match(Output::Copy(stores)) = &config.root[3].kind else { panic!() };
    assert!(matches!(stores[0], Output::Stdout(_)));

    write("loop.conf", "@include loop.conf\n");
    let e = Config::load(&dir.path().join("loop.conf")).unwrap_err().to_string();
    assert!(e.contains("include cycle"), "{e}");
    write("missing.conf", "\n@include nope.conf\n");
    let e = Config::load(&dir.path().join("missing.conf")).unwrap_err().to_string();
    assert!(e.contains("missing.conf:2: @include nope.conf: cannot read"), "{e}");
}

#[test]
fn every_broken_directive_is_reported() {
    let text = "<match a>\n  @type loki\n</match>\n<match b>\n  @type file\n</match>\n<label @L>\n  <match c>\n    @type grep\n  </match>\n  <match d>\n    @type relabel\n    @label @NOPE\n  </match>\n</label>\n<worker 0>\n</worker>\n";
    let Err(ConfigError::Invalid(problems)) = parse(text) else { panic!("expected problems") };
    let lines: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "/virtual/fluent.conf:1: <match a>: output @type loki is not supported by chaoslab: implemented \
             outputs are rewrite_tag_filter, copy, kafka2, elasticsearch, stdout, file, null and relabel",
            "/virtual/fluent.conf:4: <match b>: parameter `path` is required",
            "/virtual/fluent.conf:8: <match c>: output @type grep is not supported by chaoslab: implemented \
             outputs are rewrite_tag_filter, copy, kafka2, elasticsearch, stdout, file, null and relabel",
            "/virtual/fluent.conf:11: <match d>: label @NOPE is not defined",
            "/virtual/fluent.conf:16: <worker 0>: <worker> is not supported by chaoslab: chaoslab runs a \
             single routing worker",
        ]
    );
    assert!(err(text).starts_with("5 problems:\n/virtual/fluent.conf:1: "), "{}", err(text));
}
