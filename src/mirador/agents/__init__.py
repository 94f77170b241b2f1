"""Agents that watch: scheduled or conditional answers whose results become notifications."""
