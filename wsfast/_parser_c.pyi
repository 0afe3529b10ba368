# Types of wsfast._parser_c: wsfast/_parser.py compiled by Cython (see _parser.pyi).
from ._parser import EVENT_OVERHEAD as EVENT_OVERHEAD
from ._parser import MIN_BUDGET as MIN_BUDGET
from ._parser import Parser as Parser
