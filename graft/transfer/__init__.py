"""graft.transfer"""
