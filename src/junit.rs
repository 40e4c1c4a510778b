//! `--junit-xml PATH`: the session's results as JUnit XML, the format CI systems read.
//!
//! One `<testsuite name="herd">`; each test is a `<testcase>` whose `classname` is the test id's
//! module part (the path before the first `::`, as pytest's junitxml writes it, with `/` as `.`)
//! and whose `name` is the rest. herd's own outcomes map onto JUnit's: crashed is an error,
//! timed out a failure, not run a skip.

use std::io::Write;
use std::time::Duration;

use herd_actors::{SessionReport, TestResult};
use herd_core::grouping::module_of;
use herd_core::outcome::Outcome;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

/// A duration in seconds as reported; a value no clock could give (negative, NaN, infinite,
/// beyond `Duration`) is written as zero rather than taking the report down.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

/// The JUnit report of a finished session.
pub fn junit_report(report: &SessionReport) -> Report {
    let mut suite = TestSuite::new("herd");
    suite.set_time(seconds(report.duration));
    for result in &report.results {
        suite.add_test_case(test_case(result));
    }
    let mut junit = Report::new("herd");
    junit.set_time(seconds(report.duration));
    junit.add_test_suite(suite);
    junit
}

/// Writes the JUnit report of `report` into `file`, whole, and makes sure it is on the disk:
/// every error (a full disk, say) is returned, including one from the final flush.
pub fn write_junit(report: &SessionReport, mut file: std::fs::File) -> std::io::Result<()> {
    let xml = junit_report(report)
        .to_string()
        .map_err(std::io::Error::other)?;
    file.write_all(xml.as_bytes())?;
    file.sync_all()
}

fn test_case(result: &TestResult) -> TestCase {
    let verdict = &result.verdict;
    let (kind, ty) = match verdict.outcome {
        Outcome::Passed | Outcome::Xpassed => (None, ""),
        Outcome::Failed => (Some(NonSuccessKind::Failure), "failed"),
        Outcome::TimedOut => (Some(NonSuccessKind::Failure), "timed out"),
        Outcome::Error => (Some(NonSuccessKind::Error), "error"),
        Outcome::Crashed => (Some(NonSuccessKind::Error), "crashed"),
        Outcome::Skipped | Outcome::Xfailed | Outcome::NotRun => (None, "skipped"),
    };
    let mut status = match (kind, verdict.outcome) {
        (Some(kind), _) => TestCaseStatus::non_success(kind),
        (None, Outcome::Skipped | Outcome::Xfailed | Outcome::NotRun) => TestCaseStatus::skipped(),
        (None, _) => TestCaseStatus::success(),
    };
    if !ty.is_empty() {
        status.set_type(ty);
        let message = match verdict.outcome {
            Outcome::NotRun => Some("not run".to_string()),
            Outcome::Xfailed => Some(format!(
                "expected failure: {}",
                verdict.message.as_deref().unwrap_or("")
            )),
            _ => verdict.message.clone(),
        };
        if let Some(message) = message {
            status.set_message(message);
        }
        if let Some(details) = &verdict.details {
            status.set_description(details.as_str());
        }
    }
    let module = module_of(&result.test);
    let name = result
        .test
        .strip_prefix(module)
        .and_then(|n| n.strip_prefix("::"))
        .unwrap_or(&result.test);
    let mut case = TestCase::new(name, status);
    if name != result.test {
        case.set_classname(module.trim_end_matches(".py").replace('/', "."));
    }
    case.set_time(seconds(verdict.duration));
    if let Some(worker) = &result.worker {
        case.add_property(Property::new("herd.worker", worker.as_str()));
    }
    for (key, value) in &verdict.properties {
        let value = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        case.add_property(Property::new(key.as_str(), value));
    }
    case
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_core::outcome::{SessionEnd, Tally, Verdict};

    fn result(test: &str, outcome: Outcome, message: Option<&str>) -> TestResult {
        let details = message.map(|m| format!("long text\n{m}"));
        let mut verdict = Verdict::decided(outcome, 0.25, message.map(str::to_string), details);
        verdict.properties = vec![("answer".into(), serde_json::json!(42))];
        TestResult {
            test: test.into(),
            worker: Some("w1".into()),
            verdict,
        }
    }

    #[test]
    fn every_outcome_maps_onto_junit_and_parses() {
        let results = vec![
            result("tests/test_a.py::test_ok", Outcome::Passed, None),
            result(
                "tests/test_a.py::TestX::test_fail",
                Outcome::Failed,
                Some("assert 1 == 2 <&>"),
            ),
            result(
                "tests/test_a.py::test_err",
                Outcome::Error,
                Some("fixture broke"),
            ),
            result(
                "tests/test_b.py::test_crash",
                Outcome::Crashed,
                Some("worker w1 crashed"),
            ),
            result(
                "tests/test_b.py::test_slow",
                Outcome::TimedOut,
                Some("timed out after 1s"),
            ),
            result(
                "tests/test_b.py::test_skip",
                Outcome::Skipped,
                Some("no db"),
            ),
            result("plain-id", Outcome::NotRun, None),
        ];
        let report = SessionReport {
            end: SessionEnd::Completed,
            tally: Tally::default(),
            results,
            exit_code: 1,
            duration: 1.5,
            violations: vec![],
            workers: vec![],
            faults: vec![],
            output_failures: vec![],
        };
        let xml = junit_report(&report).to_string().unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        assert_eq!(suite.attribute("tests"), Some("7"));
        assert_eq!(suite.attribute("failures"), Some("2"));
        assert_eq!(suite.attribute("errors"), Some("2"));
        // quick-junit counts skipped cases in `disabled` (the JUnit schema's name for them).
        assert_eq!(suite.attribute("disabled"), Some("2"));
        let case = |name: &str| {
            doc.descendants()
                .find(|n| n.attribute("name") == Some(name))
                .unwrap()
        };
        let fail = case("TestX::test_fail");
        assert_eq!(fail.attribute("classname"), Some("tests.test_a"));
        let failure = fail.children().find(|n| n.has_tag_name("failure")).unwrap();
        assert_eq!(failure.attribute("message"), Some("assert 1 == 2 <&>"));
        assert!(failure.text().unwrap().contains("long text"));
        assert!(case("test_crash")
            .children()
            .any(|n| n.has_tag_name("error") && n.attribute("type") == Some("crashed")));
        let not_run = case("plain-id")
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap();
        assert_eq!(not_run.attribute("message"), Some("not run"));
        let props: Vec<(&str, &str)> = case("test_ok")
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|n| (n.attribute("name").unwrap(), n.attribute("value").unwrap()))
            .collect();
        assert_eq!(props, [("herd.worker", "w1"), ("answer", "42")]);
    }
}
