"""Helpers shared by nslab's tests, imported as a package (``from helpers.kernel import sh``).

pytest.ini puts tests/ on sys.path (``pythonpath = tests``); fixtures stay in conftest.py
files, plain functions and constants live here, so no test imports a conftest.
"""
