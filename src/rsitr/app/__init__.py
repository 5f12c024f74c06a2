"""The application: wires the library into DVC stages, Prefect flows and commands.

This package alone knows where artifacts live (``rsitr.app.paths``). DVC runs the data
stages (``data_stages``); the Prefect flows (``flows``) run the model work, one step per
module: ``keywords``, ``training``, ``evaluation``, ``c2f``, ``registry``, ``leaderboard``.
"""
