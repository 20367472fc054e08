"""Self-improvement: the daily/weekly/monthly jobs, their proposals and reports (jobs.py is
the entry point; the scheduler that runs them is agent/schedule.py). Kept import-free, so
the command line can name the jobs without loading them."""

ANALYSES = ("daily", "weekly", "monthly", "full")
JOBS = (*ANALYSES, "auto")
SCHEDULED = ("daily", "weekly", "monthly")
