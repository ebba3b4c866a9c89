//! Time ranges in a message ("yesterday", "last 3 days", "since monday") and forecast horizons
//! ("next 2 weeks"), resolved against the time the message was received. Days and weeks are
//! UTC calendar days; weeks start on Monday.
//!
//! | written | range |
//! |---|---|
//! | `today`, `yesterday`, `3 days ago`, `2025-06-01`, `monday`, `june 3` | that calendar day (today: up to now) |
//! | `this week` / `this month` / `this year` | from its start to now |
//! | `last week` / `last month` / `last year` (also `previous`) | the calendar week, month or year before this one |
//! | `last 24h`, `past 3 days`, `in the last hour`, `past week`, `last two weeks` | a window ending now (a month is 30 days, a year 365) |
//! | `june`, `in may` | that month (this year, or last year if it is still to come) |
//! | `since <any of the above>` | from its start to now |
//! | `ever`, `all time`, `overall` | from 1970 to now, taken only when nothing more precise is said |

use std::ops::Range;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::text::Token;

/// A time range `[start, end)` with a label for answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// The first instant in the range.
    pub start: DateTime<Utc>,
    /// The first instant after the range (`now` for ranges that end now).
    pub end: DateTime<Utc>,
    /// How to say it: "yesterday", "the last 7 days", "since 2025-06-01".
    pub label: String,
}

impl Period {
    /// The calendar day of `now` so far: what questions without a period are about.
    pub fn today(now: DateTime<Utc>) -> Period {
        Period {
            start: midnight(now.date_naive()),
            end: now,
            label: "today".to_owned(),
        }
    }

    fn day(date: NaiveDate, label: String) -> Option<Period> {
        Some(Period {
            start: midnight(date),
            end: midnight(date.succ_opt()?),
            label,
        })
    }
}

/// Words the period and horizon parsers read besides [`MONTHS`]; the spelling corrector knows
/// them all, so it never turns one into another word (`coming` into `going`). Words of 3
/// letters or fewer are never corrected and are left out.
pub(crate) const WORDS: &[&str] = &[
    "today",
    "yesterday",
    "tomorrow",
    "this",
    "current",
    "last",
    "past",
    "previous",
    "prev",
    "since",
    "from",
    "ago",
    "next",
    "coming",
    "over",
    "within",
    "ever",
    "overall",
    "alltime",
    "time",
    "minute",
    "minutes",
    "mins",
    "hour",
    "hours",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "monday",
    "tuesday",
    "tues",
    "wednesday",
    "thursday",
    "thurs",
    "friday",
    "saturday",
    "sunday",
    "zero",
    "three",
    "four",
    "five",
    "seven",
    "eight",
    "nine",
    "eleven",
    "twelve",
    "fourteen",
    "fifteen",
    "twenty",
    "thirty",
    "sixty",
    "ninety",
    "couple",
    "during",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    fn parse(w: &str) -> Option<Unit> {
        Some(match w {
            "minute" | "minutes" | "min" | "mins" | "m" => Unit::Minute,
            "hour" | "hours" | "hr" | "hrs" | "h" => Unit::Hour,
            "day" | "days" | "d" => Unit::Day,
            "week" | "weeks" | "wk" | "wks" | "w" => Unit::Week,
            "month" | "months" | "mo" => Unit::Month,
            "year" | "years" | "yr" | "yrs" | "y" => Unit::Year,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
            Unit::Year => "year",
        }
    }

    /// `n` of this unit as a duration (a month is 30 days, a year 365).
    fn times(self, n: u32) -> Option<Duration> {
        let n = i64::from(n);
        match self {
            Unit::Minute => Duration::try_minutes(n),
            Unit::Hour => Duration::try_hours(n),
            Unit::Day => Duration::try_days(n),
            Unit::Week => Duration::try_days(n.checked_mul(7)?),
            Unit::Month => Duration::try_days(n.checked_mul(30)?),
            Unit::Year => Duration::try_days(n.checked_mul(365)?),
        }
    }
}

fn number_word(w: &str) -> Option<u32> {
    const WORDS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    if let Some(n) = WORDS.iter().position(|x| *x == w) {
        return u32::try_from(n).ok();
    }
    Some(match w {
        "a" | "an" => 1,
        "couple" => 2,
        "fourteen" => 14,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        "sixty" => 60,
        "ninety" => 90,
        _ => return None,
    })
}

fn weekday(w: &str) -> Option<Weekday> {
    Some(match w {
        "monday" => Weekday::Mon,
        "tuesday" | "tues" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" | "thurs" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// Month names, January first.
pub(crate) const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month(w: &str) -> Option<u32> {
    let full = MONTHS.iter().position(|n| *n == w);
    let short = MONTHS
        .iter()
        .position(|n| n.len() > 3 && w.len() == 3 && n.starts_with(w));
    full.or(short).and_then(|i| u32::try_from(i + 1).ok())
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn week_start(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

fn month_start(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, 1)
}

fn prev_month(year: i32, month: u32) -> (i32, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn whole_month(year: i32, month: u32) -> Option<Period> {
    let (ny, nm) = next_month(year, month);
    let start = month_start(year, month)?;
    Some(Period {
        start: midnight(start),
        end: midnight(month_start(ny, nm)?),
        label: format!("in {}", start.format("%B %Y")),
    })
}

/// A reader over the message's tokens at one position.
struct At<'a> {
    tokens: &'a [Token],
    now: DateTime<Utc>,
}

impl At<'_> {
    fn word(&self, i: usize) -> Option<&str> {
        match self.tokens.get(i) {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// A count at `i` (digits or a number word), with the index after it.
    fn count(&self, i: usize) -> Option<(u32, usize)> {
        match self.tokens.get(i)? {
            Token::Num(_) => Some((self.tokens[i].number()?, i + 1)),
            Token::Word(w) => Some((number_word(w)?, i + 1)),
            _ => None,
        }
    }

    fn unit(&self, i: usize) -> Option<Unit> {
        self.word(i).and_then(Unit::parse)
    }

    fn today(&self) -> NaiveDate {
        self.now.date_naive()
    }

    /// A window of `n` units ending now.
    fn rolling(&self, n: u32, unit: Unit) -> Option<Period> {
        let start = self.now.checked_sub_signed(unit.times(n)?)?;
        let label = if n == 1 {
            format!("the last {}", unit.name())
        } else {
            format!("the last {n} {}s", unit.name())
        };
        Some(Period {
            start,
            end: self.now,
            label,
        })
    }

    /// The calendar week, month or year before the current one.
    fn previous(&self, unit: Unit) -> Option<Period> {
        let today = self.today();
        let (start, end) = match unit {
            Unit::Week => {
                let this = week_start(today);
                (this - Duration::days(7), this)
            }
            Unit::Month => {
                let (y, m) = prev_month(today.year(), today.month());
                (
                    month_start(y, m)?,
                    month_start(today.year(), today.month())?,
                )
            }
            Unit::Year => (
                NaiveDate::from_ymd_opt(today.year() - 1, 1, 1)?,
                NaiveDate::from_ymd_opt(today.year(), 1, 1)?,
            ),
            Unit::Day => (today.pred_opt()?, today),
            Unit::Hour | Unit::Minute => return self.rolling(1, unit),
        };
        Some(Period {
            start: midnight(start),
            end: midnight(end),
            label: format!("last {}", unit.name()),
        })
    }

    /// From the start of the current week, month or year to now.
    fn current(&self, unit: Unit) -> Option<Period> {
        let today = self.today();
        let start = match unit {
            Unit::Day => today,
            Unit::Week => week_start(today),
            Unit::Month => month_start(today.year(), today.month())?,
            Unit::Year => NaiveDate::from_ymd_opt(today.year(), 1, 1)?,
            Unit::Hour | Unit::Minute => return self.rolling(1, unit),
        };
        Some(Period {
            start: midnight(start),
            end: self.now,
            label: format!("this {}", unit.name()),
        })
    }

    /// The most recent `day` (today when today is one; strictly before today when `before`).
    fn recent_weekday(&self, day: Weekday, before: bool) -> Option<Period> {
        let today = self.today();
        let mut back =
            (7 + today.weekday().num_days_from_monday() - day.num_days_from_monday()) % 7;
        if before && back == 0 {
            back = 7;
        }
        let date = today - Duration::days(i64::from(back));
        Period::day(date, format!("on {}", date.format("%A %Y-%m-%d")))
    }

    /// A date from a month and a day of it, in this year or, if still to come, the last one.
    fn month_day(&self, m: u32, d: u32) -> Option<Period> {
        let today = self.today();
        let mut date = NaiveDate::from_ymd_opt(today.year(), m, d)?;
        if date > today {
            date = NaiveDate::from_ymd_opt(today.year() - 1, m, d)?;
        }
        Period::day(date, format!("on {date}"))
    }

    fn month_named(&self, m: u32) -> Option<Period> {
        let today = self.today();
        let year = if m > today.month() {
            today.year() - 1
        } else {
            today.year()
        };
        let mut p = whole_month(year, m)?;
        if m == today.month() && year == today.year() {
            p.end = self.now;
        }
        Some(p)
    }

    /// A day number after a month name (`3`, `3rd`), with the index after it.
    fn day_of_month(&self, i: usize) -> Option<(u32, usize)> {
        let d = self
            .tokens
            .get(i)?
            .number()
            .filter(|d| (1..=31).contains(d))?;
        let suffix = matches!(self.word(i + 1), Some("st" | "nd" | "rd" | "th"));
        Some((d, i + 1 + usize::from(suffix)))
    }

    /// The period starting at token `i`, with the index after it.
    fn period(&self, i: usize) -> Option<(Period, usize)> {
        if let Some(Token::Date(date)) = self.tokens.get(i) {
            return Some((Period::day(*date, format!("on {date}"))?, i + 1));
        }
        let Some(w) = self.word(i) else {
            return self.numbered_day(i);
        };
        match w {
            "today" => Some((Period::today(self.now), i + 1)),
            "yesterday" => {
                let d = self.today().pred_opt()?;
                Some((Period::day(d, "yesterday".to_owned())?, i + 1))
            }
            "since" | "from" => {
                let (p, j) = self.period(i + 1)?;
                let label = format!("since {}", p.label.trim_start_matches("on "));
                Some((
                    Period {
                        start: p.start,
                        end: self.now,
                        label,
                    },
                    j,
                ))
            }
            "this" | "current" => {
                let unit = self.unit(i + 1)?;
                Some((self.current(unit)?, i + 2))
            }
            "last" | "past" | "previous" | "prev" => {
                if let Some(day) = self.word(i + 1).and_then(weekday) {
                    return Some((self.recent_weekday(day, true)?, i + 2));
                }
                if let Some((n, j)) = self.count(i + 1) {
                    let unit = self.unit(j)?;
                    return Some((self.rolling(n, unit)?, j + 1));
                }
                let unit = self.unit(i + 1)?;
                let calendar = w != "past" && matches!(unit, Unit::Week | Unit::Month | Unit::Year);
                let p = if calendar {
                    self.previous(unit)?
                } else {
                    self.rolling(1, unit)?
                };
                Some((p, i + 2))
            }
            "ever" | "overall" | "alltime" => Some((self.all_time(), i + 1)),
            "all" if self.word(i + 1) == Some("time") => Some((self.all_time(), i + 2)),
            _ => self.named_day(i, w),
        }
    }

    /// Weekdays, month names with or without a day, and [`Self::numbered_day`].
    fn named_day(&self, i: usize, w: &str) -> Option<(Period, usize)> {
        if let Some(day) = weekday(w) {
            return Some((self.recent_weekday(day, false)?, i + 1));
        }
        if let Some(m) = month(w) {
            if let Some((d, j)) = self.day_of_month(i + 1) {
                return Some((self.month_day(m, d)?, j));
            }
            // "may" is a month only after a preposition.
            let after_preposition = i > 0
                && matches!(
                    self.word(i - 1),
                    Some("in" | "since" | "during" | "of" | "for" | "from")
                );
            if w != "may" || after_preposition {
                return Some((self.month_named(m)?, i + 1));
            }
            return None;
        }
        self.numbered_day(i)
    }

    /// `3 june`, `2 days ago`.
    fn numbered_day(&self, i: usize) -> Option<(Period, usize)> {
        let (n, j) = self.count(i)?;
        if let Some(m) = self.word(j).and_then(month) {
            if (1..=31).contains(&n) {
                return Some((self.month_day(m, n)?, j + 1));
            }
        }
        if self.unit(j) == Some(Unit::Day) && self.word(j + 1) == Some("ago") {
            let date = self.today() - Duration::try_days(i64::from(n))?;
            return Some((Period::day(date, format!("on {date}"))?, j + 2));
        }
        None
    }

    fn all_time(&self) -> Period {
        Period {
            start: DateTime::UNIX_EPOCH,
            end: self.now,
            label: "all time".to_owned(),
        }
    }

    /// A forecast horizon at `i` in days, with the index after it.
    fn horizon(&self, i: usize) -> Option<(u32, usize)> {
        let w = self.word(i)?;
        let (n, unit_at) = match w {
            "tomorrow" => return Some((1, i + 1)),
            "next" | "coming" => self.count(i + 1).unwrap_or((1, i + 1)),
            "for" | "over" | "within" | "in" => {
                let mut j = i + 1;
                if self.word(j) == Some("the") {
                    j += 1;
                }
                if matches!(self.word(j), Some("next" | "coming")) {
                    j += 1;
                }
                self.count(j)?
            }
            _ => return None,
        };
        let days = match self.unit(unit_at)? {
            Unit::Day => n,
            Unit::Week => n.checked_mul(7)?,
            Unit::Month => n.checked_mul(30)?,
            Unit::Year => n.checked_mul(365)?,
            Unit::Hour | Unit::Minute => return None,
        };
        (1..=MAX_HORIZON_DAYS)
            .contains(&days)
            .then_some((days, unit_at + 1))
    }
}

/// The longest forecast horizon a message can ask for.
pub const MAX_HORIZON_DAYS: u32 = 365;

/// The first time range in `tokens`, with the tokens it covers. "Ever" and "all time" count
/// only when nothing more precise is said.
pub(crate) fn find_period(tokens: &[Token], now: DateTime<Utc>) -> Option<(Period, Range<usize>)> {
    let at = At { tokens, now };
    let mut fallback = None;
    let mut i = 0;
    while i < tokens.len() {
        if let Some((p, end)) = at.period(i) {
            if p.start != DateTime::UNIX_EPOCH {
                return Some((p, i..end));
            }
            fallback.get_or_insert((p, i..end));
            i = end;
        } else {
            i += 1;
        }
    }
    fallback
}

/// The first forecast horizon in `tokens` ("next 2 weeks", "for 10 days", "tomorrow") in days.
pub(crate) fn find_horizon(tokens: &[Token]) -> Option<(u32, Range<usize>)> {
    let at = At {
        tokens,
        now: DateTime::UNIX_EPOCH,
    };
    (0..tokens.len()).find_map(|i| at.horizon(i).map(|(d, end)| (d, i..end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assistant::text::tokenize;

    /// Wednesday 2025-06-11, 15:30 UTC.
    fn now() -> DateTime<Utc> {
        "2025-06-11T15:30:00Z".parse().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn period(text: &str) -> Option<(String, String)> {
        find_period(&tokenize(text), now()).map(|(p, _)| {
            (
                p.start.format("%Y-%m-%d %H:%M").to_string(),
                p.end.format("%Y-%m-%d %H:%M").to_string(),
            )
        })
    }

    fn pair(a: &str, b: &str) -> Option<(String, String)> {
        Some((a.to_owned(), b.to_owned()))
    }

    #[test]
    fn calendar_days_weeks_and_months() {
        assert_eq!(
            period("orders today"),
            pair("2025-06-11 00:00", "2025-06-11 15:30")
        );
        assert_eq!(
            period("yesterday's revenue"),
            pair("2025-06-10 00:00", "2025-06-11 00:00")
        );
        assert_eq!(
            period("this week"),
            pair("2025-06-09 00:00", "2025-06-11 15:30")
        );
        assert_eq!(
            period("last week"),
            pair("2025-06-02 00:00", "2025-06-09 00:00")
        );
        assert_eq!(
            period("previous month"),
            pair("2025-05-01 00:00", "2025-06-01 00:00")
        );
        assert_eq!(
            period("sales in may"),
            pair("2025-05-01 00:00", "2025-06-01 00:00")
        );
        assert_eq!(period("may i see the orders"), None);
        assert_eq!(
            period("on june 3rd"),
            pair("2025-06-03 00:00", "2025-06-04 00:00")
        );
        assert_eq!(
            period("on monday"),
            pair("2025-06-09 00:00", "2025-06-10 00:00")
        );
        assert_eq!(
            period("last wednesday"),
            pair("2025-06-04 00:00", "2025-06-05 00:00")
        );
        assert_eq!(
            period("2 days ago"),
            pair("2025-06-09 00:00", "2025-06-10 00:00")
        );
        assert_eq!(
            period("in december"),
            pair("2024-12-01 00:00", "2025-01-01 00:00")
        );
    }

    #[test]
    fn windows_ending_now() {
        let (p, span) = find_period(&tokenize("orders in the last 3 hours"), now()).unwrap();
        assert_eq!(p.start, at("2025-06-11T12:30:00Z"));
        assert_eq!(p.end, now());
        assert_eq!(p.label, "the last 3 hours");
        assert_eq!(span, 3..6);
        assert_eq!(
            period("past 24h"),
            pair("2025-06-10 15:30", "2025-06-11 15:30")
        );
        assert_eq!(
            period("past week"),
            pair("2025-06-04 15:30", "2025-06-11 15:30")
        );
        assert_eq!(
            period("last two days"),
            pair("2025-06-09 15:30", "2025-06-11 15:30")
        );
        assert_eq!(
            period("in the last hour"),
            pair("2025-06-11 14:30", "2025-06-11 15:30")
        );
        assert_eq!(period("last 4000000000 years"), None);
    }

    #[test]
    fn since_runs_to_now_and_all_time_yields() {
        assert_eq!(
            period("since 2025-06-01"),
            pair("2025-06-01 00:00", "2025-06-11 15:30")
        );
        assert_eq!(
            period("since monday"),
            pair("2025-06-09 00:00", "2025-06-11 15:30")
        );
        assert_eq!(
            period("since last week"),
            pair("2025-06-02 00:00", "2025-06-11 15:30")
        );
        assert_eq!(
            period("revenue ever"),
            pair("1970-01-01 00:00", "2025-06-11 15:30")
        );
        assert_eq!(
            period("best ever day: yesterday"),
            pair("2025-06-10 00:00", "2025-06-11 00:00")
        );
        assert_eq!(period("how many orders"), None);
    }

    #[test]
    fn horizons_are_in_days() {
        let h = |t: &str| find_horizon(&tokenize(t)).map(|(d, _)| d);
        assert_eq!(h("forecast for the next 2 weeks"), Some(14));
        assert_eq!(h("demand next week"), Some(7));
        assert_eq!(h("over 10 days"), Some(10));
        assert_eq!(h("tomorrow"), Some(1));
        assert_eq!(h("in the last 3 days"), None);
        assert_eq!(h("next 9999 days"), None);
    }
}
