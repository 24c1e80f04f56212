//! Times given on the command line and in API queries.

use chrono::{DateTime, NaiveDate, Utc};

/// `2025-01-31`, an RFC 3339 time, or an age like `30d` / `12h` / `90m`.
pub fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| {
        format!("{s:?} is not a date (2025-01-31), an RFC 3339 time, or an age (30d, 12h)")
    })?;
    let age = match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        _ => return Err(format!("unknown unit in {s:?}: use d, h or m")),
    };
    Ok(Utc::now() - age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_accepts_dates_times_and_ages() {
        assert_eq!(parse_time("2025-01-31").unwrap().to_rfc3339(), "2025-01-31T00:00:00+00:00");
        assert!(parse_time("2025-01-31T10:00:00+02:00").is_ok());
        let a = parse_time("30d").unwrap();
        assert!((Utc::now() - a).num_days() == 30);
        assert!(parse_time("soon").is_err());
        assert!(parse_time("3w").is_err());
    }
}
