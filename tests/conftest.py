"""Announce which build the run is testing: the tree is importable as is (flat layout), so a
run without the compiled modules silently tests the pure-Python twins unless told."""


def pytest_report_header(config):
    import wsfast
    import wsfast._speedups as s

    return (
        f"wsfast {wsfast.__version__} from {wsfast.__file__}: kernels {s.IMPLEMENTATION}, "
        f"parser/events {s.PARSER_IMPLEMENTATION}"
    )
