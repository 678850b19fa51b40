//! None: a receipt records an answer, it moves no money (its lines post through the
//! incentive stream's `ConsumptionRecorded`). The journal does not decode this family.
