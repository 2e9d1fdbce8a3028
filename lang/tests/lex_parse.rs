//! Lexer, preprocessor and parser tests: a script in, the pretty-printed AST and the
//! diagnostics out. Every script that parses cleanly is also checked to print and re-parse to
//! the same AST. Regenerate expectations with `UPDATE_EXPECT=1 cargo test -p lang`.

mod common;

use common::without_spans;

use std::collections::BTreeMap;
use std::fmt::Write;

use expect_test::{expect, Expect};
use lang::ast::Script;
use lang::diag::Diagnostic;
use lang::kernel::Fixture;
use lang::lexer;
use lang::parse::parse;
use lang::preprocess::{Macros, PreprocessEnv};
use lang::pretty;
use lang::span::{FileId, SourceKind, SourceMap};

fn env() -> PreprocessEnv<'static> {
    static KERNEL: std::sync::LazyLock<Fixture> = std::sync::LazyLock::new(|| Fixture {
        config: BTreeMap::from([("CONFIG_64BIT".to_string(), "y".to_string())]),
        ..Fixture::default()
    });
    PreprocessEnv {
        kernel_release: "6.1.0-18-amd64".into(),
        arch: "x86_64".into(),
        kernel: Some(&*KERNEL),
        script_args: vec!["42".into(), "/bin/ls".into()],
    }
}

fn parse_with(src: &str, macros: &mut Macros) -> (Script, Vec<Diagnostic>, SourceMap) {
    let mut sources = SourceMap::default();
    let file = sources.add("test.stp", src, SourceKind::Script);
    let (script, diags) = parse(&sources, file, &env(), macros);
    (script, diags, sources)
}

fn render(script: &Script, diags: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = pretty::script(script, sources);
    for d in diags {
        let (line, col) = sources.line_col(d.span);
        write!(out, "error[{}] {line}:{col}: {}", d.code, d.message).unwrap();
        if !d.label.is_empty() {
            write!(out, " ({})", d.label).unwrap();
        }
        out.push('\n');
    }
    out
}

fn assert_round_trip(script: &Script, sources: &SourceMap, macros: &Macros) {
    let printed = pretty::script(script, sources);
    let (again, diags, _) = parse_with(&printed, &mut macros.clone());
    assert!(diags.is_empty(), "printed script does not parse: {diags:?}\n{printed}");
    assert_eq!(without_spans(script), without_spans(&again), "round trip changed the AST:\n{printed}");
}

fn check(src: &str, expect: Expect) {
    check_with(src, &mut Macros::default(), expect);
}

fn check_with(src: &str, macros: &mut Macros, expect: Expect) {
    let (script, diags, sources) = parse_with(src, macros);
    expect.assert_eq(&render(&script, &diags, &sources));
    if diags.is_empty() {
        assert_round_trip(&script, &sources, macros);
    }
}

fn check_tokens(src: &str, expect: Expect) {
    let (tokens, diags) = lexer::lex(src, FileId(0));
    let mut out = String::new();
    for (tok, span) in tokens {
        writeln!(out, "{}..{} {tok:?}", span.start, span.end).unwrap();
    }
    for d in diags {
        writeln!(out, "error[{}] {}..{}: {}", d.code, d.span.start, d.span.end, d.message).unwrap();
    }
    expect.assert_eq(&out);
}

#[test]
fn lex_comments_numbers_strings() {
    check_tokens(
        r#"# hash
x // slash
/* block
*/ 10 017 0x1F 0xffffffffffffffff "a\n\t\\\"\101\x41" "b" 'q' 08 99999999999999999999 "open"#,
        expect![[r#"
            7..8 Ident("x")
            30..32 Number(10)
            33..36 Number(15)
            37..41 Number(31)
            42..60 Number(-1)
            61..84 Str("a\n\t\\\"AAb")
            86..87 Ident("q")
            error[E0001] 85..86: unexpected character `\'`
            error[E0001] 87..88: unexpected character `\'`
            error[E0002] 89..91: bad number `08`: not an octal number
            error[E0003] 92..112: integer `99999999999999999999` does not fit in 64 bits
            error[E0004] 113..118: unterminated string
        "#]],
    );
}

#[test]
fn lex_operators_and_sigils() {
    check_tokens(
        "<<< .= =~ !~ -> ++ -- >>= <<= && || %= ^= |= &= $x $$vars @count @foo $1 @2 $# @# %{ int x; %} %( %? %: %)",
        expect![[r#"
            0..3 Aggregate
            4..6 ConcatAssign
            7..9 Match
            10..12 NotMatch
            13..15 Arrow
            16..18 PlusPlus
            19..21 MinusMinus
            22..25 ShrAssign
            26..29 ShlAssign
            30..32 AndAnd
            33..35 OrOr
            36..38 ModAssign
            39..41 XorAssign
            42..44 OrAssign
            45..47 AndAssign
            48..50 TargetVar("x")
            51..57 TargetVar("$vars")
            58..64 AtCountOp
            65..69 AtName("foo")
            70..72 DollarArg(1)
            73..75 AtArg(2)
            76..78 DollarCount
            79..81 AtCount
            82..94 EmbeddedC
            95..97 PpIf
            98..100 PpThen
            101..103 PpElse
            104..106 PpEnd
        "#]],
    );
}

#[test]
fn lex_unterminated_comment_and_c() {
    check_tokens(
        "a /* never closed",
        expect![[r#"
            0..1 Ident("a")
            error[E0005] 2..17: unterminated `/*` comment
        "#]],
    );
    check_tokens(
        "%{ int x;",
        expect![[r#"
            error[E0006] 0..9: unterminated embedded C: `%{` without `%}`
        "#]],
    );
}

#[test]
fn probe_points() {
    check(
        r#"probe begin, end(-1), timer.ms(100), kernel.function("vfs_*").return?, syscall.*.return!,
  process(@2).function("main").call, kernel.function("f").maxactive(10), syscall.{open,close},
  sys_**, module("ext4").statement($1) if (x > 0) { }"#,
        expect![[r#"
            probe begin, end(-1), timer.ms(100), kernel.function("vfs_*").return?, syscall.*.return!, process("/bin/ls").function("main").call, kernel.function("f").maxactive(10), syscall.{open,close}, sys_**, module("ext4").statement(42) if (x > 0) {
            }
        "#]],
    );
}

#[test]
fn predicate_and_division() {
    check(
        "probe syscall.connect /dport == 23 && a / 2 > 1/ { printf(\"%d\\n\", dport) }",
        expect![[r#"
            probe syscall.connect /(dport == 23) && ((a / 2) > 1)/ {
              printf("%d\n", dport);
            }
        "#]],
    );
}

#[test]
fn aliases_globals_functions() {
    check(
        r#"
probe my.open = syscall.open, syscall.openat ? { fname = filename }
probe my.open += kernel.function("x") { }
global a, b[1000], c = -1, d%[100], e%, s = "x", n = @1
private global p
function f:long(x:long, s:string) { return x + 1 }
private function g() %{ /* C */ %}
function h(a, b) { }
%{ #include <x.h> %}
"#,
        expect![[r#"
            probe my.open = syscall.open, syscall.openat? {
              fname = filename;
            }

            probe my.open += kernel.function("x") {
            }

            global a
            global b[1000]
            global c = -1
            global d%[100]
            global e%
            global s = "x"
            global n = @1
            private global p

            function f:long(x:long, s:string) {
              return x + 1;
            }

            private function g() %{ /* C */ %}

            function h(a, b) {
            }

            %{ #include <x.h> %}
        "#]],
    );
}

#[test]
fn statements_without_semicolons() {
    check(
        r#"probe begin {
  a = 1 b = 2
  x = y - z
  c++ --d
  if (a) b = 1 else if (c) d = 2 else { e = 3 }
  while (i < 10) i++
  for (i = 0; i < 3; i++) { continue }
  for (;;) break
  try { error("x") } catch (msg) { println(msg) }
  try { } catch { }
  delete arr[1, "a"]
  delete arr
  ;
  next
}
function f() { if (x) return else return 2 }
function g() { return }
"#,
        expect![[r#"
            probe begin {
              a = 1;
              b = 2;
              x = (y - z);
              (c++)--;
              d;
              if (a)
                b = 1;
              else if (c)
                d = 2;
              else {
                e = 3;
              }
              while (i < 10)
                i++;
              for (i = 0; i < 3; i++) {
                continue;
              }
              for (; ; )
                break;
              try {
                error("x");
              } catch (msg) {
                println(msg);
              }
              try {
              } catch {
              }
              delete arr[1, "a"];
              delete arr;
              next;
            }

            function f() {
              if (x)
                return;
              else
                return 2;
            }

            function g() {
              return;
            }
        "#]],
    );
}

#[test]
fn dangling_else_binds_inner() {
    check(
        "probe begin { if (a) if (b) x() else y() }",
        expect![[r#"
            probe begin {
              if (a)
                if (b)
                  x();
                else
                  y();
            }
        "#]],
    );
}

#[test]
fn foreach_forms() {
    check(
        r#"probe end {
  foreach (k in a) print(k)
  foreach ([p, e-] in b limit 10) { }
  foreach ([p] in b+) { }
  foreach (v = [x, y] in c) { }
  foreach (k in s @sum-) { }
  foreach (k+ in a limit n * 2) { }
}"#,
        expect![[r#"
            probe end {
              foreach (k in a)
                print(k);
              foreach ([p, e-] in b limit 10) {
              }
              foreach (p in b+) {
              }
              foreach (v = [x, y] in c) {
              }
              foreach (k in s @sum-) {
              }
              foreach (k+ in a limit n * 2) {
              }
            }
        "#]],
    );
}

#[test]
fn precedence() {
    check(
        r#"probe begin {
  x = a || b && c | d ^ e & f == g < h << i . j + k * l
  y = a ? b : c ? d : e
  s .= "a" . "b"
  z = k in arr && [a, b] in arr2
  n = -5 + - x - -9223372036854775808
  m = !a && ~b
  t <<< 1
  q = s =~ "^a" || s !~ "b"
  a = b = c
  r = a[1]->b[2]++
}"#,
        expect![[r#"
            probe begin {
              x = (a || (b && (c | (d ^ (e & ((f == g) < (h << (i . (j + (k * l))))))))));
              y = (a ? b : (c ? d : e));
              s .= ("a" . "b");
              z = ((k in arr) && ([a, b] in arr2));
              n = ((-5 + -x) - -9223372036854775808);
              m = (!a && ~b);
              t <<< 1;
              q = ((s =~ "^a") || (s !~ "b"));
              a = (b = c);
              r = a[1]->b[2]++;
            }
        "#]],
    );
}

#[test]
fn at_operators_and_target_vars() {
    check(
        r#"probe kernel.function("f").return {
  c = @count(s) + @sum(s) + @min(s) + @max(s) + @avg(s) + @variance(s)
  print(@hist_log(s)) print(@hist_linear(s, 0, 100, 10))
  e = @entry($fd) d = @defined($x->y) ? 1 : 0
  p = @cast(ptr, "struct sock", "kernel")->sk_family
  v = @var("jiffies") w = @const("AF_INET")
  m = $skb->next->data[2]
  q = &$x->y r = *p
  args = $$parms
  u = @choose_defined($a, $b)
  n = $# + @1
}"#,
        expect![[r#"
            probe kernel.function("f").return {
              c = (((((@count(s) + @sum(s)) + @min(s)) + @max(s)) + @avg(s)) + @variance(s));
              print(@hist_log(s));
              print(@hist_linear(s, 0, 100, 10));
              e = @entry($fd);
              d = (@defined($x->y) ? 1 : 0);
              p = @cast(ptr, "struct sock", "kernel")->sk_family;
              v = @var("jiffies");
              w = @const("AF_INET");
              m = $skb->next->data[2];
              q = &$x->y;
              r = *p;
              args = $$parms;
              u = @choose_defined($a, $b);
              n = ($# + @1);
            }
        "#]],
    );
}

#[test]
fn conditionals() {
    check(
        r#"probe begin {
  %( kernel_v >= "5.4" %? a = 1 %: a = 2 %)
  %( kernel_v < "2.6.24" %? old() %)
  %( kernel_vr == "6.1*" && arch == "x86_64" %? b = 1 %)
  %( arch == "arm64" || runtime == "kernel" %? bad() %: %( CONFIG_64BIT == "y" %? c = 64 %: c = 32 %) %)
  %( $# >= 2 && systemtap_v >= "4.0" && systemtap_privilege == "stapdev" %? d = 1 %)
  %( CONFIG_NOPE == "y" %? bad() %)
}"#,
        expect![[r#"
            probe begin {
              a = 1;
              b = 1;
              c = 64;
              d = 1;
            }
        "#]],
    );
}

#[test]
fn conditional_errors() {
    check(
        "probe begin { %( foo == 1 %? a() %) %( kernel_v %? b() %) %( arch == \"x\" }",
        expect![[r#"
            error[E0011] 1:18: unknown preprocessor variable `foo`
            error[E0010] 1:40: bad preprocessor condition: expected a comparison operator, found `%?`
            error[E0010] 1:59: `%(` without a matching `%)`
            error[E0021] 1:14: unexpected end of input (expected identifier, $variable, @macro, `$N`, `@N`, `$#`, ... (46 possibilities))
        "#]],
    );
    check(
        "probe begin { a() %? %) }",
        expect![[r#"
            probe begin {
              a();
            }
            error[E0010] 1:19: `%?` outside a `%( %)` conditional
            error[E0010] 1:22: `%)` outside a `%( %)` conditional
        "#]],
    );
}

#[test]
fn macros() {
    check(
        r#"@define twice(x) %( (@x) * 2 %)
@define ONE %( 1 %)
probe begin { a = @twice(@ONE + 1) b = @twice(f(1, 2)) c = @unknown(3) }"#,
        expect![[r#"
            probe begin {
              a = ((1 + 1) * 2);
              b = (f(1, 2) * 2);
              c = @unknown(3);
            }
        "#]],
    );
    check(
        "@define loop %( @loop %)\n@define two(a, b) %( @a @b %)\nprobe begin { @loop @two(1) }",
        expect![[r#"
            probe begin {
            }
            error[E0014] 3:15: macro `@loop` expands too deep (recursive definition?)
            error[E0013] 3:21: macro `@two` takes 2 argument(s), got 1
        "#]],
    );
}

#[test]
fn macros_from_a_tapset() {
    let mut macros = Macros::default();
    let (_, diags, _) = parse_with("@define task_pid(t) %( @t->pid %)", &mut macros);
    assert!(diags.is_empty());
    check_with(
        "probe begin { p = @task_pid($task) }",
        &mut macros,
        expect![[r#"
            probe begin {
              p = $task->pid;
            }
        "#]],
    );
}

#[test]
fn syntax_errors_are_reported_per_item() {
    check(
        "probe begin { x = } \nglobal ok\nprobe end { y = (1 }\nfunction f( { }",
        expect![[r#"
            global ok
            error[E0020] 1:19: unexpected `}` (expected identifier, $variable, @macro, `$N`, `@N`, `$#`, ... (33 possibilities))
            error[E0020] 3:20: unexpected `}` (expected `)`)
        "#]],
    );
}

#[test]
fn bad_types_and_script_args() {
    check(
        "function f:stats(x:long) { } probe process(@3).function(\"x\") { }",
        expect![[r#"
            function f(x:long) {
            }

            probe process("").function("x") {
            }
            error[E0024] 1:12: unknown type `stats`
            error[E0023] 1:44: `@3` names a script argument, but the script got 2 argument(s)
        "#]],
    );
}

#[test]
fn newer_syntax() {
    check(
        r#"probe kernel.{trace("a")!, function("b").return} {
  delete arr[pid(), *]
  foreach ([s, d+] in cfg[src, *]) { }
  x = @cast(k, "struct key")->usage$$ y = $p->f$
  $return = %{ -EIO %}
  %{ /* statement */ %}
  v = @variance(s, 3)
}"#,
        expect![[r#"
            probe kernel.trace("a")!, kernel.function("b").return {
              delete arr[pid(), *];
              foreach ([s, d+] in cfg[src, *]) {
              }
              x = @cast(k, "struct key")->usage$$;
              y = $p->f$;
              $return = %{ -EIO %};
              %{ /* statement */ %}
              v = @variance(s);
            }
        "#]],
    );
}

/// Half-written input (the REPL's daily bread) must give diagnostics, never a panic.
#[test]
fn every_prefix_parses_without_panic() {
    let src = r#"@define m(a) %( @a + 1 %)
global g%[10] = 1
probe kernel.{trace("a")!, function("b").return} /pid() == 1/ {
  %( kernel_v >= "5.4" %? x = @m(2) %: x = 3 %)
  foreach ([k, v-] in arr[1, *] limit 5) { printf("%d\n", @count(s[k])) }
  try { delete a[*] } catch (e) { $x->y$$ = "s\x41\101" }
}
function f:long(s:string) %{ /* c */ %}
"#;
    for end in (0..=src.len()).filter(|&i| src.is_char_boundary(i)) {
        let _ = parse_with(&src[..end], &mut Macros::default());
    }
}
