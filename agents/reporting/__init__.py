"""Sample-efficiency reporting for `mcrl-report`, split by job.

- `discovery`: find run directories and load eval.csv / config.yaml (env steps, never agent steps)
- `stats`: scores at budgets, rliable aggregates with stratified bootstrap CIs, profiles, curves
- `reference`: published scores shipped in configs/reference/*.csv, kept apart from own runs
- `plots`: PNG figures (Agg, no pyplot)
- `writer`: summary.json and report.md
"""
