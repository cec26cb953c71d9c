"""alphaloop.execution"""
