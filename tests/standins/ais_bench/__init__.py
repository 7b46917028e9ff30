"""Stand-in for ais_bench (tests only, never the product): `python -m ais_bench` with tests/standins on
PYTHONPATH runs __main__.py, which runs the stand-in atc's .om with ONNX Runtime on the CPU."""

__version__ = "0.0.2+standin"
