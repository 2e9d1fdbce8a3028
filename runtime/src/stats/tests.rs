use expect_test::{expect, Expect};

use super::*;

const LOG2: StatSpec = StatSpec { hist: Hist::Log2, bit_shift: 0 };

fn linear(lo: i64, hi: i64, step: i64) -> StatSpec {
    StatSpec { hist: Hist::Linear(Linear::new(lo, hi, step).unwrap()), bit_shift: 0 }
}

fn stat_of(spec: &StatSpec, samples: &[i64]) -> Stat {
    let mut stat = Stat::new(spec);
    for &v in samples {
        stat.add(spec, v);
    }
    stat
}

#[test]
fn log2_buckets() {
    let cases: &[(i64, usize, i64)] = &[
        // (value, bucket, label of that bucket)
        (0, 64, 0),
        (1, 65, 1),
        (2, 66, 2),
        (3, 66, 2),
        (4, 67, 4),
        (7, 67, 4),
        (8, 68, 8),
        (1 << 32, 97, 1 << 32),
        ((1 << 33) - 1, 97, 1 << 32),
        (i64::MAX, 127, 1 << 62),
        (-1, 63, -1),
        (-2, 62, -2),
        (-3, 62, -2),
        (-4, 61, -4),
        (-7, 61, -4),
        (-8, 60, -8),
        (i64::MIN + 1, 1, -(1 << 62)),
        (i64::MIN, 0, i64::MIN),
    ];
    for &(v, bucket, label) in cases {
        assert_eq!(log2_bucket(v), bucket, "log2_bucket({v})");
        assert_eq!(log2_bucket_value(bucket), label, "log2_bucket_value({bucket})");
    }
}

#[test]
fn linear_buckets() {
    // @hist_linear(s, 0, 100, 10): 13 buckets; 100..=109 is the last regular one.
    let cases: &[(i64, usize)] =
        &[(-1, 0), (i64::MIN, 0), (0, 1), (9, 1), (10, 2), (99, 10), (100, 11), (109, 11), (110, 12), (i64::MAX, 12)];
    for &(v, bucket) in cases {
        assert_eq!(linear_bucket(v, 0, 100, 10), bucket, "linear_bucket({v})");
    }
    // A range that is not a multiple of the step: (25 - -5) / 10 + 3 = 6 buckets.
    let cases: &[(i64, usize)] = &[(-6, 0), (-5, 1), (4, 1), (5, 2), (24, 3), (25, 4), (34, 4), (35, 5)];
    for &(v, bucket) in cases {
        assert_eq!(linear_bucket(v, -5, 25, 10), bucket, "linear_bucket({v})");
    }
    assert_eq!(Linear::new(0, 100, 10).unwrap().n_buckets(), 13);
    assert_eq!(Linear::new(0, 10, 0), Err(StatError::BadLinearRange));
    assert_eq!(Linear::new(10, 0, 1), Err(StatError::BadLinearRange));
    assert_eq!(Linear::new(0, 126, 1).map(|l| l.n_buckets()), Err(StatError::BadLinearRange));
    assert_eq!(Linear::new(0, 125, 1).map(|l| l.n_buckets()), Ok(128));
}

#[test]
fn extractors() {
    let per_cpu = [stat_of(&LOG2, &[5, -3]), Stat::new(&LOG2), stat_of(&LOG2, &[4])];
    let s = merge(&LOG2, &per_cpu);
    let got = (s.count(), s.sum(), s.min(), s.max(), s.avg(), s.bucket(67), s.bucket(128));
    assert_eq!(got, (3, 6, Ok(-3), Ok(5), Ok(2), Ok(2), Err(StatError::IndexOutOfRange)));
    // @avg truncates toward zero, as C does.
    assert_eq!(merge(&LOG2, &[stat_of(&LOG2, &[-3, -4])]).avg(), Ok(-3));

    let empty = merge(&LOG2, &[Stat::new(&LOG2), Stat::new(&LOG2)]);
    assert_eq!((empty.count(), empty.sum()), (0, 0));
    let e = Err(StatError::EmptyAggregate);
    assert_eq!((empty.min(), empty.max(), empty.avg(), empty.variance()), (e, e, e, e));
    assert_eq!(empty.bucket(64), e);
    assert_eq!(print_hist_log(&empty), Err(StatError::EmptyAggregate));
    assert_eq!(StatError::EmptyAggregate.to_string(), "empty aggregate");
}

#[test]
fn variance_as_stap_computes_it() {
    let one_to_five = [1, 2, 3, 4, 5];
    // From stap(1): `for(i=1;i<=5;i++) x<<<i println(@variance(x))` prints 12, and 2 with
    // `@variance(x,1)`; the exact sample variance is 2.5.
    let s = merge(&LOG2, &[stat_of(&LOG2, &one_to_five)]);
    assert_eq!(s.variance(), Ok(12));
    let shifted = StatSpec { bit_shift: 1, ..LOG2 };
    assert_eq!(merge(&shifted, &[stat_of(&shifted, &one_to_five)]).variance(), Ok(2));

    // An array element merges pairwise (stap's map.c): one CPU keeps its Welford value.
    assert_eq!(merge_entry(&LOG2, &[stat_of(&LOG2, &one_to_five)]).variance(), Ok(7));

    // Spread over CPUs; values worked by hand from stat.c and map.c.
    let per_cpu = [stat_of(&LOG2, &[1, 2]), Stat::new(&LOG2), stat_of(&LOG2, &[3, 4, 5])];
    // CPU0: avg_s 1, variance_s 1/1 = 1; CPU2: avg_s 3, m2 5, variance_s 5/2 = 2;
    // all: avg_s 15/5 = 3, S1 = 2*(1-3)^2 + 3*0 = 8, S2 = 1*1 + 2*2 = 5, 13/4 = 3.
    assert_eq!(merge(&LOG2, &per_cpu).variance(), Ok(3));
    let entry = merge_entry(&LOG2, &per_cpu);
    assert_eq!((entry.count(), entry.sum(), entry.min(), entry.max()), (5, 15, Ok(1), Ok(5)));
    // Two sets only, so the same sums: (8 + 1 + 0 + 4) / 4 = 3.
    assert_eq!(entry.variance(), Ok(3));
    assert_eq!(entry.buckets, merge(&LOG2, &per_cpu).buckets);

    // A single sample: stap divides by count - 1 = 0 and gets 0.
    assert_eq!(merge(&LOG2, &[stat_of(&LOG2, &[7])]).variance(), Ok(0));
}

/// Every `@hist_log` printed in systemtap-doc's sample outputs, rebuilt from the counts it
/// shows and printed again: the output must be the same bytes.
#[test]
fn hist_log_reproduces_stap_samples() {
    let samples = include_str!("testdata/stap_hist_log_samples.txt");
    let mut n_checked = 0;
    for block in samples.split("====\n") {
        let mut lines = block.lines().filter(|l| !l.starts_with('#'));
        let Some(name) = lines.next() else { continue };
        let expected: Vec<&str> = lines.collect();
        let mut stat = Stat::new(&LOG2);
        for row in &expected[1..] {
            let Some((label, bar_count)) = row.split_once(" |") else {
                continue;
            }; // a `~` row
            let label: i64 = label.trim().parse().unwrap();
            let count: i64 = bar_count.trim_start_matches('@').trim().parse().unwrap();
            stat.buckets[log2_bucket(label)] = count;
            stat.count += count;
        }
        let expected = expected.join("\n") + "\n\n";
        assert_eq!(print_hist_log(&stat).unwrap(), expected, "{name}");
        n_checked += 1;
    }
    assert_eq!(n_checked, 36);
}

#[test]
fn hist_log_from_samples() {
    // Zero is the lowest row when it holds data; bars are scaled to the largest bucket.
    let mut stat = stat_of(&LOG2, &[0, 0, 1, 5, 6]);
    stat.add(&LOG2, 1 << 20);
    for _ in 0..100 {
        stat.add(&LOG2, 2);
    }
    check(
        &print_hist_log(&stat).unwrap(),
        expect![[r#"
              value |-------------------------------------------------- count
                  0 |@                                                    2
                  1 |                                                     1
                  2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 100
                  4 |@                                                    2
                  8 |                                                     0
                 16 |                                                     0
                    ~
             262144 |                                                     0
             524288 |                                                     0
            1048576 |                                                     1
            2097152 |                                                     0
            4194304 |                                                     0

        "#]],
    );
}

// No sample output in systemtap-doc shows a linear histogram with data; these expectations
// were worked out from `_stp_stat_print_histogram_buf` in stap 4.8's stat-common.c.
#[test]
fn hist_linear() {
    let spec = linear(0, 100, 10);
    let stat = stat_of(&spec, &[0, 5, 12, 35, 100, 109]);
    check(
        &print_hist_linear(&stat, &Linear::new(0, 100, 10).unwrap()).unwrap(),
        expect![[r#"
            value |-------------------------------------------------- count
                0 |@@                                                 2
               10 |@                                                  1
               20 |                                                   0
               30 |@                                                  1
               40 |                                                   0
               50 |                                                   0
                  ~
               80 |                                                   0
               90 |                                                   0
              100 |@@                                                 2

        "#]],
    );

    // Under- and overflow rows appear only when they hold samples; the overflow row is
    // labelled with the start of the last regular bucket.
    let spec = linear(-20, 20, 10);
    let stat = stat_of(&spec, &[-21, -100, 0, 30, 31, 1000]);
    check(
        &print_hist_linear(&stat, &Linear::new(-20, 20, 10).unwrap()).unwrap(),
        expect![[r#"
            value |-------------------------------------------------- count
             <-20 |@@                                                 2
              -20 |                                                   0
              -10 |                                                   0
                0 |@                                                  1
               10 |                                                   0
               20 |                                                   0
              >20 |@@@                                                3

        "#]],
    );

    // No underflow: the printed range starts two rows before the data, not at `<lo`.
    let spec = linear(0, 1000, 100);
    let stat = stat_of(&spec, &[350, 360, 390]);
    check(
        &print_hist_linear(&stat, &Linear::new(0, 1000, 100).unwrap()).unwrap(),
        expect![[r#"
            value |-------------------------------------------------- count
              100 |                                                   0
              200 |                                                   0
              300 |@@@                                                3
              400 |                                                   0
              500 |                                                   0

        "#]],
    );
}

#[test]
fn unread_globals() {
    let stat = merge(&LOG2, &[stat_of(&LOG2, &[5, 1, 3])]);
    let empty = Stat::new(&LOG2);
    let keys = [Key::Long(1), Key::Str("k".into())];
    let lines = [
        format_global_scalar("x", &Value::Long(-3)),
        format_global_scalar("s", &Value::Str("text".into())),
        format_array_entry("a", &keys, &Value::Long(4)),
        format_array_entry("b", &[Key::Str("q".into())], &Value::Str("v".into())),
        format_global_stat("st", &stat),
        format_global_stat("e", &empty),
        format_array_stat_entry("sa", &keys, &stat).unwrap(),
    ];
    check(
        &lines.concat(),
        expect![[r#"
            x=-3
            s="text"
            a[1,"k"]=4
            b["q"]="v"
            st @count=3 @min=1 @max=5 @sum=9 @avg=3
            e @count=0x0
            sa[1,"k"] @count=3 @min=1 @max=5 @sum=9 @avg=3
        "#]],
    );
    assert_eq!(format_array_stat_entry("sa", &keys, &empty), Err(StatError::EmptyAggregate));
}

fn check(actual: &str, expect: Expect) {
    expect.assert_eq(actual);
}

/// Every bucket's interval holds exactly the values the bucketing functions put there: its
/// ends (and one past them) land in it (and outside it).
#[test]
fn bucket_ranges_are_the_buckets_intervals() {
    let samples = [i64::MIN, i64::MIN + 1, -1000, -4, -3, -2, -1, 0, 1, 2, 3, 7, 8, 1 << 40, i64::MAX];
    for spec in [LOG2, linear(0, 100, 10), linear(-7, 20, 3)] {
        let stat = stat_of(&spec, &samples);
        let bucket_of = |v: i64| match spec.hist {
            Hist::Log2 => log2_bucket(v),
            Hist::Linear(l) => linear_bucket(v, l.lo, l.hi, l.step),
            Hist::None => unreachable!(),
        };
        let ranges = bucket_ranges(&spec.hist, &stat);
        assert_eq!(ranges.iter().map(|r| r.count).sum::<i64>(), samples.len() as i64, "{spec:?}");
        let mut previous_max = None;
        for r in &ranges {
            let b = bucket_of(r.min.or(r.max).unwrap());
            assert_eq!(r.count, stat.buckets[b], "{spec:?} {r:?}");
            if let Some(min) = r.min {
                assert_eq!(bucket_of(min), b, "{spec:?} {r:?}");
                if min > i64::MIN {
                    assert_ne!(bucket_of(min - 1), b, "{spec:?} {r:?}");
                }
            }
            if let Some(max) = r.max {
                assert_eq!(bucket_of(max), b, "{spec:?} {r:?}");
                if max < i64::MAX {
                    assert_ne!(bucket_of(max + 1), b, "{spec:?} {r:?}");
                }
            }
            assert!(previous_max < r.min.or(Some(i64::MIN)), "{spec:?}: buckets out of order at {r:?}");
            previous_max = r.max;
        }
    }
    assert_eq!(
        bucket_ranges(&Hist::Log2, &stat_of(&LOG2, &[2, 3, -2])),
        [BucketRange { min: Some(-3), max: Some(-2), count: 1 }, BucketRange { min: Some(2), max: Some(3), count: 2 }]
    );
}
