"""The steps the DVC stages and the Prefect flows run: data stages, keywords, pretraining,
training, evaluation, coarse-to-fine, EBA metrics, registration, leaderboard, reports, summary."""
