"""graft.score"""
