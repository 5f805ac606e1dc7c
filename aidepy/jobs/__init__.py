"""The use cases, each in one place: `baseline` opens the trusted baseline and compares with it
for check, update, compare, the daily report and promote; `deliver` hands reports to their
`report_url`s."""
