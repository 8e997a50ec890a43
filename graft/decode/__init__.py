"""graft.decode"""
