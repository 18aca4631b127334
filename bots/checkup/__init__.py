"""The checks of `threadwise doctor` (bots/doctor.py runs them): each returns findings, never raises."""
