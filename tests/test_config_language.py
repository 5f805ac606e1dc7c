"""The aide.conf language as an admin writes it: groups, rules, macros, conditions, includes, options."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from aidepy.attributes import DEFAULT_GROUPS, attrset
from aidepy.config.evaluate import Config, load, parse_text
from aidepy.errors import ConfigError
from aidepy.selection import RuleKind


def regexes(cfg: Config) -> list[str]:
    return [r.regex for r in cfg.rules]


def test_comments_and_blank_lines_are_skipped() -> None:
    cfg = parse_text("# a comment\n\n   # indented comment\n\t\n/etc p\n")
    assert regexes(cfg) == ["/etc"]
    assert cfg.rules[0].origin == "<text>:5"


def test_inline_comment_after_option_and_macro() -> None:
    cfg = parse_text("database_out=file:/tmp/x.db   # where it goes\n@@define A b # note\n/@@{A} p\n")
    assert cfg.database_out == "/tmp/x.db"
    assert regexes(cfg) == ["/b"]


def test_group_definition_and_redefinition() -> None:
    cfg = parse_text("Perms = p+u+g\n/a Perms\nPerms = p\n/b Perms\n")
    assert cfg.rules[0].attrs == attrset("p+u+g")
    assert cfg.rules[1].attrs == attrset("p")
    assert cfg.groups["Perms"] == attrset("p")


def test_attribute_expressions_with_predefined_groups() -> None:
    cfg = parse_text("Full = R+sha512\n/a Full-i\n/b L\n/c >\n/d X+sha256\n/e E+p\n")
    full = DEFAULT_GROUPS["R"] | {"sha512"}
    assert [r.attrs for r in cfg.rules] == [
        full - {"i"}, DEFAULT_GROUPS["L"], DEFAULT_GROUPS[">"], DEFAULT_GROUPS["X"] | {"sha256"},
        attrset("p"),
    ]


def test_spaces_around_operators_are_allowed() -> None:
    cfg = parse_text("G = p + u - p\n/a G + s\n")
    assert cfg.rules[0].attrs == attrset("u+s")


def test_rule_kinds_and_restrictions() -> None:
    cfg = parse_text("/a f p\n=/b/ d,f p\n!/c l\n!/d\n/e 0 p\n/f 0,f p\n")
    assert [(r.kind, r.regex, r.file_types) for r in cfg.rules] == [
        (RuleKind.REGULAR, "/a", frozenset("f")),
        (RuleKind.EQUAL, "/b/", frozenset("df")),
        (RuleKind.NEGATIVE, "/c", frozenset("l")),
        (RuleKind.NEGATIVE, "/d", None),
        (RuleKind.REGULAR, "/e", None),
        (RuleKind.REGULAR, "/f", frozenset("f")),
    ]
    assert cfg.rules[2].attrs == frozenset()


def test_rule_keeps_its_config_line_and_origin() -> None:
    cfg = parse_text("\n  /var/log/.*\\.log$ f p+s\n", name="x.conf")
    rule = cfg.rules[0]
    assert rule.origin == "x.conf:2"
    assert rule.text == "  /var/log/.*\\.log$ f p+s"


def test_backslash_escapes_as_aide_reads_them() -> None:
    # `\\` and `\@` and `\ ` are escapes; a backslash before anything else stays.
    cfg = parse_text("/a\\\\.b p\n/c\\.d p\n/e\\ f p\n/g\\@h p\n")
    assert regexes(cfg) == ["/a\\.b", "/c\\.d", "/e f", "/g@h"]


def test_unclosed_macro_is_literal_text() -> None:
    cfg = parse_text("@@define X x\n/a/@@{X°/@@{X} p\n")
    assert regexes(cfg) == ["/a/@@{X°/x"]


def test_define_undef_and_substitution() -> None:
    cfg = parse_text("@@define D etc\n/@@{D}/a p\n@@undef D\n/@@{D}/b p\n@@define E\n/x@@{E}y p\n")
    assert regexes(cfg) == ["/etc/a", "//b", "/xy"]


def test_hostname_macro_is_predefined_unless_defined() -> None:
    host = socket.gethostname()
    cfg = parse_text("/h/@@{HOSTNAME} p\n@@define HOSTNAME other\n/i/@@{HOSTNAME} p\n")
    assert regexes(cfg) == [f"/h/{host}", "/i/other"]


def test_if_conditions(tmp_path: Path) -> None:
    host = socket.gethostname()
    text = f"""@@define A
@@if defined A
/yes1 p
@@else
/no1 p
@@endif
@@if not defined B
/yes2 p
@@endif
@@if hostname {host}
/yes3 p
@@endif
@@if not hostname {host}
/no3 p
@@endif
@@if exists {tmp_path}
/yes4 p
@@endif
@@if exists {tmp_path}/missing
/no4 p
@@else
/yes5 p
@@endif
@@if not not defined A
/yes6 p
@@endif
"""
    assert regexes(parse_text(text)) == ["/yes1", "/yes2", "/yes3", "/yes4", "/yes5", "/yes6"]


def test_deprecated_if_forms_and_nesting() -> None:
    host = socket.gethostname()
    text = f"""@@define A 1
@@ifdef A
@@ifndef B
/yes1 p
@@endif
@@ifhost {host}
/yes2 p
@@endif
@@ifnhost {host}
/no2 p
@@else
/yes3 p
@@endif
@@endif
"""
    assert regexes(parse_text(text)) == ["/yes1", "/yes2", "/yes3"]


def test_errors_in_branches_not_taken_are_not_evaluated() -> None:
    cfg = parse_text("@@if defined NOPE\n/a Undefined\n@@include /does/not/exist\n@@endif\n/b p\n")
    assert regexes(cfg) == ["/b"]


def test_include_file_and_sources(tmp_path: Path) -> None:
    inner = tmp_path / "inner.conf"
    inner.write_text("@@define V var\n/inner p\n")
    main = tmp_path / "main.conf"
    main.write_text(f"/before p\n@@include {inner}\n/@@{{V}} p\n")
    cfg = load(main)
    assert regexes(cfg) == ["/before", "/inner", "/var"]
    assert cfg.sources == [main, inner]
    assert cfg.rules[1].origin == f"{inner}:2"


def test_include_directory_with_regex_order_and_prefix(tmp_path: Path) -> None:
    snippets = tmp_path / "conf.d"
    snippets.mkdir()
    (snippets / "20_b").write_text("/b p\n")
    (snippets / "10_a").write_text("/a p\n")
    (snippets / "10_a.dpkg-old").write_text("/old p\n")
    (snippets / "sub").mkdir()
    main = tmp_path / "main.conf"
    main.write_text(f"@@include {snippets} ^[0-9a-z_]+$ /srv/\n/c p\n")
    cfg = load(main)
    assert regexes(cfg) == ["/srv/a", "/srv/b", "/c"]
    assert cfg.rules[0].prefix == "/srv"


def test_nested_rule_prefixes_concatenate(tmp_path: Path) -> None:
    inner_dir = tmp_path / "inner"
    inner_dir.mkdir()
    (inner_dir / "x").write_text("/x p\n")
    outer_dir = tmp_path / "outer"
    outer_dir.mkdir()
    (outer_dir / "o").write_text(f"@@include {inner_dir} ^x$ /two\n")
    main = tmp_path / "main.conf"
    main.write_text(f"@@include {outer_dir} ^o$ /one\n")
    assert regexes(load(main)) == ["/one/two/x"]


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_x_include_runs_executables_with_setenv(tmp_path: Path) -> None:
    snippets = tmp_path / "x.d"
    snippets.mkdir()
    snippets.chmod(0o755)
    _executable(snippets / "10_gen", '#!/bin/sh\nprintf "/gen/%s p\\n" "$AIDEPY_TEST_DIR"\n')
    (snippets / "20_plain").write_text("/plain p\n")
    _executable(snippets / "30_gen2", "#!/bin/sh\necho '@@define G late'\necho '/@@{G} p'\n")
    main = tmp_path / "main.conf"
    main.write_text(f"@@x_include_setenv AIDEPY_TEST_DIR from_conf\n@@x_include {snippets} ^[0-9]\n")
    cfg = load(main)
    assert regexes(cfg) == ["/gen/from_conf", "/plain", "/late"]
    assert cfg.rules[0].origin == f"{snippets}/10_gen (stdout):1"


def test_x_include_setenv_does_not_override_the_environment(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDEPY_TEST_DIR", "from_env")
    script = _executable(tmp_path / "gen", '#!/bin/sh\nprintf "/%s p\\n" "$AIDEPY_TEST_DIR"\n')
    cfg = parse_text(f"@@x_include_setenv AIDEPY_TEST_DIR from_conf\n@@x_include {script}\n")
    assert regexes(cfg) == ["/from_env"]


def test_setenv_between_snippets_reaches_later_ones(tmp_path: Path) -> None:
    snippets = tmp_path / "x.d"
    snippets.mkdir()
    (snippets / "1").write_text("@@x_include_setenv AIDEPY_LATE_VAR set_by_1\n")
    _executable(snippets / "2", '#!/bin/sh\nprintf "/%s p\\n" "${AIDEPY_LATE_VAR:-unset}"\n')
    cfg = parse_text(f"@@x_include {snippets} ^[0-9]$\n")
    assert regexes(cfg) == ["/set_by_1"]


def test_x_include_of_a_plain_file_reads_it(tmp_path: Path) -> None:
    plain = tmp_path / "plain.conf"
    plain.write_text("/plain p\n")
    assert regexes(parse_text(f"@@x_include {plain}\n")) == ["/plain"]


def test_lowercase_word_is_an_option_not_a_group() -> None:
    with pytest.raises(ConfigError, match="unknown config option: 'mygroup'"):
        parse_text("mygroup = p\n")
    cfg = parse_text("My_Group = p\n/a My_Group\n")
    assert cfg.rules[0].attrs == attrset("p")
    assert any("special characters in group names" in w for w in cfg.warnings)


def test_crlf_line_endings() -> None:
    cfg = parse_text("G = p\r\n/a G\r\n@@define X y\r\n/@@{X} p\r\n")
    assert regexes(cfg) == ["/a", "/y"]


def test_last_line_without_newline() -> None:
    assert regexes(parse_text("/a p\n/b p")) == ["/a", "/b"]


def test_line_continuation_extension_warns() -> None:
    cfg = parse_text("/var/log \\\n    f \\\n    p+s\n/x p\n")
    assert [(r.regex, r.file_types, r.origin) for r in cfg.rules] == [
        ("/var/log", frozenset("f"), "<text>:1"), ("/x", None, "<text>:4")]
    assert any("line continuation" in w for w in cfg.warnings)


def test_unsupported_hashes_are_dropped_with_a_warning() -> None:
    cfg = parse_text("/a p+sha256+tiger+haval+gost\n/b H\n")
    assert cfg.rules[0].attrs == attrset("p+sha256")
    assert "tiger" not in cfg.rules[1].attrs and "sha512" in cfg.rules[1].attrs
    assert cfg.warnings[0].startswith("<text>:1: ignoring unsupported hash algorithm(s): ")


def test_aidepy_hashes_are_attributes() -> None:
    cfg = parse_text("/a p+xxh128+blake2b+sha3_256\n")
    assert cfg.rules[0].attrs == attrset("p+xxh128+blake2b+sha3_256")


def test_database_options_first_one_wins() -> None:
    cfg = parse_text("database_in=file:/a.db\ndatabase_in=file:/b.db\ndatabase_out=file:///c.db\n"
                     "database_new=file://localhost/d.db\n")
    assert (cfg.database_in, cfg.database_out, cfg.database_new) == ("/a.db", "/c.db", "/d.db")
    assert any("already set" in w for w in cfg.warnings)


def test_report_options_and_defaults() -> None:
    default = parse_text("")
    assert (default.report_level, default.report_format, default.report_grouped,
            default.report_summarize_changes, default.report_quiet) == (
        "changed_attributes", "plain", True, True, False)
    cfg = parse_text("report_level=list_entries\nreport_format=json\nreport_base16=yes\n"
                     "report_quiet=true\nreport_grouped=no\nsummarize_changes=false\n"
                     "report_detailed_init=yes\nreport_append=yes\nreport_url=stdout\n"
                     "report_url=file:/tmp/r.log\nreport_ignore_changed_attrs = m+c\n"
                     "report_force_attrs = u+g\nreport_ignore_added_attrs = sha256\n"
                     "report_ignore_removed_attrs = md5\nreport_ignore_e2fsattrs = VNIE\n")
    assert (cfg.report_level, cfg.report_format, cfg.report_base16, cfg.report_quiet,
            cfg.report_grouped, cfg.report_summarize_changes, cfg.report_detailed_init,
            cfg.report_append) == ("list_entries", "json", True, True, False, False, True, True)
    assert cfg.report_urls == ["stdout", "file:/tmp/r.log"]
    assert cfg.report_ignore_changed_attrs == attrset("m+c")
    assert cfg.report_force_attrs == attrset("u+g")
    assert cfg.report_ignore_added_attrs == attrset("sha256")
    assert cfg.report_ignore_removed_attrs == attrset("md5")
    assert cfg.report_ignore_e2fsattrs == "VNIE"
    first, second = cfg.reports
    assert (first.url, first.origin, second.url, second.origin) == (
        "stdout", "<text>:9", "file:/tmp/r.log", "<text>:10")
    assert (first.report_format, first.report_quiet, first.report_ignore_changed_attrs) == (
        "json", True, frozenset())
    assert second.report_ignore_e2fsattrs == "" and second.report_level == "list_entries"
    late = [w for w in cfg.warnings if "follows the last report_url" in w]
    assert [w.split(": ")[0] for w in late] == [f"<text>:{n}" for n in range(11, 16)]
    assert late[0] == ("<text>:11: 'report_ignore_changed_attrs' follows the last report_url "
                               "(<text>:10) and applies to no report (a report option shapes the "
                               "report_url lines after it; move it before them)")


def test_report_options_of_a_config_without_report_url_shape_the_report_to_stdout() -> None:
    cfg = parse_text("report_url=stderr\nreport_level=summary\n@@ifdef NEVER\nreport_url=stdout\n@@endif\n")
    assert [(t.url, t.report_level) for t in cfg.reports] == [("stderr", "changed_attributes")]
    assert len(cfg.warnings) == 1
    cfg = parse_text("report_level=summary\nreport_ignore_changed_attrs=m\n/ p\n")
    (target,) = cfg.reports
    assert (target.url, target.origin, target.report_level, target.report_ignore_changed_attrs) == (
        "stdout", "", "summary", frozenset({"m"}))
    assert cfg.warnings == []


def test_root_prefix_num_workers_and_aidepy_options() -> None:
    cfg = parse_text("root_prefix=/mnt/target/\nroot_prefix=/ignored\nnum_workers=100%\n"
                     "vault_device=LABEL=AIDEPY\nvault_label=MYVAULT\nvault_mountpoint=/floppy\n"
                     "signing_key=/root/k\npublic_key=/floppy/aidepy.pub\nreport_email=admin\n"
                     "sendmail=/usr/lib/sendmail\nreport_mail_limit=64k\n")
    assert cfg.root_prefix == b"/mnt/target"
    assert cfg.report_mail_limit == 64 << 10 and parse_text("").report_mail_limit == 512 << 10
    assert cfg.num_workers == os.cpu_count()
    assert (cfg.vault_device, cfg.vault_label, cfg.vault_mountpoint, cfg.signing_key,
            cfg.public_key, cfg.report_email, cfg.sendmail) == (
        "LABEL=AIDEPY", "MYVAULT", "/floppy", "/root/k", "/floppy/aidepy.pub", "admin",
        "/usr/lib/sendmail")
    default = parse_text("")
    assert (default.num_workers, default.vault_device, default.vault_label, default.signing_key,
            default.public_key, default.report_email, default.sendmail, default.state_dir) == (
        None, None, "AIDEPY", "/etc/aidepy/signing.key", None, "root", "/usr/sbin/sendmail",
        "/var/lib/aidepy")


def test_options_aidepy_ignores_are_listed() -> None:
    cfg = parse_text("gzip_dbout=yes\nlog_level=info\nwarn_dead_symlinks=yes\nconfig_version=7\n"
                     "acl_no_symlink_follow=yes\ndatabase_add_metadata=no\ndatabase_attrs=sha256\n")
    ignored = [entry.split(": ", 1)[1].split(" ")[0] for entry in cfg.ignored_options]
    assert ignored == ["gzip_dbout", "log_level", "warn_dead_symlinks", "config_version",
                       "acl_no_symlink_follow", "database_add_metadata", "database_attrs"]


def test_unrestricted_rule_warning_on_request() -> None:
    cfg = parse_text("/a p\nconfig_check_warn_unrestricted_rules=yes\n/b p\n/c f p\n/d 0 p\n")
    unrestricted = [w for w in cfg.warnings if "unrestricted" in w]
    assert unrestricted == ["<text>:3: regular rule '/b' is unrestricted"]


def test_before_and_after_lines(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    main.write_text("/@@{WHERE} G\n")
    cfg = load(main, before=["@@define WHERE etc", "G = p"], after=["/after p"])
    assert regexes(cfg) == ["/etc", "/after"]
    assert cfg.rules[1].origin == "(--after):1"


def test_digest_follows_rules_and_options() -> None:
    a = parse_text("/a p\n")
    assert a.digest == parse_text("# same rules\n/a   p\n").digest
    assert a.digest != parse_text("/a p+u\n").digest
    assert a.digest != parse_text("/a p\nreport_level=summary\n").digest


def test_non_utf8_bytes_survive_into_the_regex(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    main.write_bytes(b"/caf\xc3\xa9 p\n/raw\xff p\n")
    cfg = load(main)
    assert [r.regex.encode("utf-8", "surrogateescape") for r in cfg.rules] == [b"/caf\xc3\xa9", b"/raw\xff"]


def test_carriage_return_inside_a_line_is_refused_like_aide() -> None:
    with pytest.raises(ConfigError, match=r"<text>:1: unexpected character: '\\r'"):
        parse_text("# a comment\rwith a CR inside\n")
