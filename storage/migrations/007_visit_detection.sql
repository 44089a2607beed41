-- Visit detection (field-sales issue): what a plan was before detected presence made it done, so
-- that a processing replay which removes the stop (and no check-in was made) restores it exactly.
-- NULL: the detector did not change this visit's status (or presence is gone and it was restored).
ALTER TABLE visits ADD COLUMN status_before_detection text
    CHECK (status_before_detection IN ('planned', 'approved', 'missed'));
