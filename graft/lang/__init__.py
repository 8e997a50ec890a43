"""graft.lang"""
