//! The suite's table, in Markdown (readable in a terminal, pasted as is into
//! `docs/reliability.md`), and the ids behind any loss.

use crate::ledger::Row;

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| fault | acknowledged (voice) | delivered live | recovered | stored | transcribed | lost | duplicated | orphans | time to recover | checked besides |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let recover = r.time_to_recover.map_or("did not".to_owned(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        });
        out.push_str(&format!(
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.fault,
            r.acknowledged,
            r.voice,
            r.delivered_live,
            r.recovered,
            r.stored,
            r.transcribed,
            r.lost.len(),
            r.duplicated.len(),
            r.orphans.len(),
            recover,
            r.notes
        ));
    }
    for r in rows
        .iter()
        .filter(|r| !r.lost.is_empty() || !r.duplicated.is_empty() || !r.orphans.is_empty())
    {
        out.push_str(&format!(
            "\n{}: lost {:?}, duplicated {:?}, orphans {:?}\n",
            r.fault, r.lost, r.duplicated, r.orphans
        ));
    }
    out
}
